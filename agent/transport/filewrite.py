"""The shell side of writing a file on a host: stdin stored beside the file, then renamed over it.

SshConnection.put sends `put_script`; stepkit/hostfiles.py builds its check-and-write on
`staging_path` and `store_stdin`.
"""

from __future__ import annotations

import posixpath
import stat
import uuid

from agent.transport.quoting import command_line


def staging_path(path: str) -> str:
    """A fresh name beside `path` to write to before renaming over it (same directory: same file system)."""
    return f"{path}.ispagent-{uuid.uuid4().hex[:8]}"


def store_stdin(staging: str, mode: int) -> str:
    """The shell words that store stdin in the new file `staging` (quoted) with exactly `mode`.

    One process: coreutils' `install` creates the file 0600 with O_EXCL (never readable by others
    while it fills, never through a symlink planted at the name) and then sets `mode` itself,
    whatever the umask or a default ACL would have made of it. `cat >` plus `chmod` in a subshell
    took three processes, a fifth of a small upload's cost on the host.
    """
    return f"umask 077 && install -m {stat.S_IMODE(mode):o} -T /dev/stdin {staging}"


def put_script(path: str, mode: int, make_parents: bool = False) -> str:
    """The shell line that stores its stdin at `path` with `mode`, atomically; leaves no staging file behind.

    `mv -T`: a directory at `path` is an error, not a place to move the file into.
    """
    dest = command_line([path])
    staging = command_line([staging_path(path)])
    mkdir = f"mkdir -p -- {command_line([posixpath.dirname(path)])} && " if make_parents else ""
    return f"{mkdir}{store_stdin(staging, mode)} && mv -fT -- {staging} {dest} || {{ rm -f -- {staging}; exit 1; }}"
