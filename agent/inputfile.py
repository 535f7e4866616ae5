"""Reading a file the user pointed at (inventory, playbook, program.yaml, billing CSV, credentials,
a playbook's upload source) as bytes or text.

Only regular files are read, and only up to a size limit: a FIFO would block forever and a device
such as /dev/zero would read until memory runs out. The file is opened without blocking and its
type checked on the open descriptor, so what is checked is what is read. Every way the read can
fail becomes one line of the caller's error class, naming the file and what to do: no such file,
a directory or another kind of file, no permission, too large, not UTF-8 (with the line of the bad byte).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.errors import IspagentError

MAX_INPUT_BYTES = 64 * 1024 * 1024
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


@dataclass(frozen=True)
class InputFile:
    data: bytes
    mode: int  # the permission bits, e.g. 0o600


def read_input_bytes(
    path: Path | str,
    error: type[IspagentError],
    *,
    what: str = "file",
    hint: str | None = None,
    max_bytes: int = MAX_INPUT_BYTES,
) -> InputFile:
    """The bytes of the regular file at `path` (at most `max_bytes`); any failure raises `error`.

    `what` names the file in messages ("inventory file", "playbook"); `hint` is the fix shown when
    the file does not exist (e.g. which option gives its path).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}" + (f"; {hint}" if hint else "")) from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}; give the path of the file") from None
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror or problem}") from None
    try:
        info = os.fstat(descriptor)
        kind = stat.S_IFMT(info.st_mode)
        if kind == stat.S_IFDIR:
            raise error(f"{path}: is a directory, not a {what}; give the path of the file")
        if kind != stat.S_IFREG:
            raise error(
                f"{path}: is {_KINDS.get(kind, 'not a regular file')}, not a regular file; give the path of a file"
            )
        if info.st_size > max_bytes:
            raise error(f"{path}: the {what} is larger than {_size(max_bytes)}; ispagent reads files up to that size")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror or problem}") from None
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"{path}: the {what} is larger than {_size(max_bytes)}; ispagent reads files up to that size")
    return InputFile(data, stat.S_IMODE(info.st_mode))


def read_input_file(
    path: Path | str, error: type[IspagentError], *, what: str = "file", hint: str | None = None
) -> str:
    """The text of `path`, UTF-8 with or without a byte order mark; any failure raises `error`."""
    return decode_input(read_input_bytes(path, error, what=what, hint=hint).data, path, error, what=what)


def decode_input(data: bytes, path: Path | str, error: type[IspagentError], *, what: str = "file") -> str:
    """`data` read from `path` as UTF-8 text (a byte order mark dropped); not UTF-8 raises `error` with the line."""
    try:
        # utf-8-sig: editors on Windows start files with a byte order mark; it is not content.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        byte = data[problem.start]
        raise error(f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from None


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count} bytes"
