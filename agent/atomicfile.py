"""Files written whole or not at all: readers (and a rerun after a crash) never see half a file."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from agent.errors import InputError

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


def write_atomic(
    path: Path,
    data: bytes | str,
    mode: int | None = None,
    *,
    owner: tuple[int, int] | None = None,
    durable: bool = True,
) -> None:
    """Write `data` to a temp file beside `path` and rename it over `path`.

    `mode` None: 0666 less the umask, as any program's new file (a forced 0644 ignored umask 077).
    `durable` fsyncs before the rename (journals, reports); files that are thrown away with their
    directory (a lab host's disk) skip it: bringing up 100 hosts writes hundreds of them.
    """
    mode = 0o666 & ~current_umask() if mode is None else mode
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if owner is not None:
            os.chown(temp, *owner)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_output_path(path: Path, what: str) -> None:
    """Refuse, in one InputError line, an output path that is not (yet) a regular file.

    Written atomically, an output replaces what is there: a FIFO, a device or a link at the path
    is someone's, and is refused rather than replaced or written through.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise InputError(f"{path}: cannot check the {what} path ({error.strerror or error})") from None
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        raise InputError(
            f"{path}: is {_KINDS.get(kind, 'not a regular file')}; ispagent writes the {what} only to a "
            "regular file it replaces whole: give another path"
        )


def write_output(path: Path, data: bytes | str, what: str, *, secret: bool = False) -> None:
    """Write a file the user named (a report, metrics, an imported inventory): a regular file only,
    atomically, 0600 when it holds a secret, else as the umask says."""
    check_output_path(path, what)
    try:
        write_atomic(path, data, 0o600 if secret else None)
    except OSError as error:
        raise InputError(
            f"{path}: cannot write the {what} ({error.strerror or error}); give a path you can write"
        ) from None


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, in every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_scratch_file(path: Path, text: str, mode: int | None = 0o644, owner: tuple[int, int] | None = None) -> None:
    """`write_atomic` without the fsync, for files that live and die with a lab host."""
    write_atomic(path, text, mode, owner=owner, durable=False)
