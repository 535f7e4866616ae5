"""Local files a playbook's steps read (upload sources, templates): only from the playbook's source
directories, only regular files, only up to a size limit.

The source directories are the playbook's own directory, the `templates/` beside it, and the
directories the playbook names under `source_dirs:`, nothing else. A `src` that leads elsewhere (an
absolute path, `../..`, a symlink out of them) is refused: a playbook from a colleague or a pull
request must not copy /etc/shadow or ~/.ssh/id_ed25519 to a fleet. A FIFO would block a run (a dry
run too) and /dev/zero would read until memory ran out: only regular files are read, and every rule
is checked when the playbook is loaded, before any host is touched.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from agent.errors import IspagentError
from agent.inputfile import MAX_INPUT_BYTES, read_input_bytes
from agent.secrets import shown
from agent.userpath import expand_home

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def find_local_file(source_dirs: Sequence[Path], src: str) -> Path | None:
    """The file `src` names: as is when absolute, else in the first of `source_dirs` that holds it.
    None when there is none, or when it resolves outside every source directory."""
    path = _located(source_dirs, src)
    return path if path is not None and _inside(path, source_dirs) else None


def local_file_problem(source_dirs: Sequence[Path], src: str) -> str | None:
    """Why `src` cannot be read (missing, outside the source directories, not a regular file, too
    large), as the end of a one-line message; None when it can."""
    path = _located(source_dirs, src)
    where = " or ".join(str(directory) for directory in source_dirs)
    if path is None:
        return f"no file {shown(src)} in {where}"
    if not _inside(path, source_dirs):
        return (
            f"{shown(src)} is outside the playbook's source directories ({where}); copy it there, "
            "or name its directory under source_dirs: in the playbook"
        )
    info = path.stat()
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        return f"{shown(src)} is {_KINDS.get(kind, 'not a regular file')}, not a regular file"
    if info.st_size > MAX_INPUT_BYTES:
        return f"{shown(src)} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB"
    return None


def read_local_file(source_dirs: Sequence[Path], src: str, error: type[IspagentError]) -> bytes:
    """The bytes of `src`; every problem of `local_file_problem` (checked again: the file may have
    changed since the playbook was loaded) raises `error`."""
    problem = local_file_problem(source_dirs, src)
    path = find_local_file(source_dirs, src)
    if problem or path is None:
        raise error(problem or f"no file {shown(src)} in {', '.join(map(str, source_dirs))}")
    return read_input_bytes(path, error, what="local file").data


def _located(source_dirs: Sequence[Path], src: str) -> Path | None:
    path = expand_home(src)
    if path.is_absolute():
        return path if os.path.exists(path) else None
    return next((base / path for base in source_dirs if os.path.exists(base / path)), None)


def _inside(path: Path, source_dirs: Sequence[Path]) -> bool:
    real = path.resolve()  # symlinks followed: a link inside pointing out is outside
    return any(real.is_relative_to(directory.resolve()) for directory in source_dirs)
