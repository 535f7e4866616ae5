"""The shell side of writing a file on a host: the command's data stored beside the file, then renamed over it.

SshConnection.put sends `put_script`; stepkit/hostfiles.py builds its check-and-write on
`staging_path` and `store_data`. Both give the bytes as the command's data (hostshell.py: the
shell function `ispagent_data`).
"""

from __future__ import annotations

import posixpath
import stat
import uuid

from agent.transport.quoting import command_line


def staging_path(path: str) -> str:
    """A fresh name beside `path` to write to before renaming over it (same directory: same file system)."""
    return f"{path}.ispagent-{uuid.uuid4().hex[:8]}"


def store_data(staging: str, mode: int) -> str:
    """The shell words that store the command's data in the new file `staging` (quoted) with exactly `mode`.

    The file is opened once, on descriptor 3, created 0600 (`umask 077`), so it is never readable by
    others while it fills. `set -C` refuses a regular file already at the name; the shell's
    noclobber still opens anything else there (a link to a device, planted by someone who can write
    the directory and read the name in `sudo`'s arguments), so what the descriptor holds must be a
    regular file before a byte is written. The data is written through it (by the shell's
    built-in printf on the host shell: no process), and `mode` is set on what it holds, through
    /proc/self/fd/3: a file swapped in at the name never gets the mode, as `chmod` of the name
    would give it. A default ACL or the umask changes nothing: `chmod` sets the mode itself.
    coreutils' `install` from stdin did the same; this is one program (`chmod`) in place of a fork
    for the pipe and `install`, a third of a small upload's cost on the host.
    """
    not_a_file = f"{{ echo {staging}: not a new regular file through /proc/self/fd/3 >&2; false; }}"
    return (
        f"umask 077 && set -C && exec 3>{staging} && {{ [ -f /proc/self/fd/3 ] || {not_a_file}; }} "
        f"&& ispagent_data >&3 && chmod {stat.S_IMODE(mode):o} /proc/self/fd/3 && exec 3>&-"
    )


def put_script(path: str, mode: int, make_parents: bool = False) -> str:
    """The shell line that stores its data at `path` with `mode`, atomically; leaves no staging file behind.

    `mv -T`: a directory at `path` is an error, not a place to move the file into.
    """
    dest = command_line([path])
    staging = command_line([staging_path(path)])
    mkdir = f"mkdir -p -- {command_line([posixpath.dirname(path)])} && " if make_parents else ""
    return f"{mkdir}{store_data(staging, mode)} && mv -fT -- {staging} {dest} || {{ rm -f -- {staging}; exit 1; }}"
