"""Reading a file the user pointed at (inventory, playbook, program.yaml, billing CSV) as text.

Every way the read can fail becomes one line of the caller's error class, naming the file and
what to do: no such file, a directory, no permission, not UTF-8 (with the line of the bad byte).
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import IspagentError


def read_input_file(
    path: Path | str, error: type[IspagentError], *, what: str = "file", hint: str | None = None
) -> str:
    """The text of `path`, UTF-8 with or without a byte order mark; any failure raises `error`.

    `what` names the file in messages ("inventory file", "playbook"); `hint` is the fix shown when
    the file does not exist (e.g. which option gives its path).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}" + (f"; {hint}" if hint else "")) from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}; give the path of the file") from None
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror or problem}") from None
    try:
        # utf-8-sig: editors on Windows start files with a byte order mark; it is not content.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        byte = data[problem.start]
        raise error(f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from None
