"""`Include` in an ssh config, read as OpenSSH reads it: the included files' lines where the directive stands;
and the owner and mode ssh demands of `~/.ssh/config` and of every file an Include reads.

paramiko's SSHConfig skips `Include`, and with it whatever a team keeps in `~/.ssh/config.d/`: hosts
that `ssh web1` reaches through a bastion would be dialed directly. ssh_config(5): each argument is a
glob, `~` expanded, a relative one under `~/.ssh` (`/etc/ssh` for the system file); the matches are read
in lexical order, none is no error; files nest at most 16 deep; each must be writable by its owner
alone, root or this user.

Scope. Before the first Host or Match, the included lines stand as they would in the file; a `Host *`
after each included file with blocks puts what follows back in the top scope, where OpenSSH starts the
next file and the line after the Include (`tests/unit/test_sshinclude.py` holds this to `ssh -G`). Inside a
Host or Match block, OpenSSH applies an included file only where that block matches, its own Host and
Match blocks included; lines of text cannot say that, so such a file is refused in one line rather than
read out of its scope. Plain settings included in a block stand in that block.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import stat
from pathlib import Path

from agent.errors import InputError
from agent.inputfile import decode_input, read_input_bytes
from agent.secrets import shown
from agent.userpath import expand_home

MAX_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
_BLOCK_KEYWORDS = ("host", "match")
_KEYWORD = re.compile(r"\s*([A-Za-z]+)(?:\s*=\s*|\s+|$)(.*)")


def expand_includes(text: str, path: Path, base: Path | None = None, depth: int = 0) -> str:
    """`text` (the ssh config at `path`) with each Include replaced by the files it names."""
    if "include" not in text.lower():
        return text
    base = base or _include_base(path)
    lines: list[str] = []
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        keyword, arguments = _keyword(line)
        if keyword != "include":
            in_block = in_block or keyword in _BLOCK_KEYWORDS
            lines.append(line)
            continue
        for included in _included(arguments, base, f"{path}, line {number}", depth):
            has_blocks = any(_keyword(text_line)[0] in _BLOCK_KEYWORDS for text_line in included.splitlines())
            if has_blocks and in_block:
                raise InputError(
                    f"{path}, line {number}: an Include inside a Host or Match block reads Host or Match blocks "
                    "of its own, which ssh applies only where the outer block matches; ispagent cannot scope them "
                    "so: move the Include above the first Host line, or give --ssh-config another file"
                )
            lines.append(included)
            if has_blocks:
                lines.append("Host *")  # back in the top scope, where OpenSSH starts the next file and line
    return "\n".join(lines) + "\n"


def _keyword(line: str) -> tuple[str | None, str]:
    """A config line's keyword, lowercased, and the rest; None for a blank or comment line."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None, ""
    match = _KEYWORD.match(line)
    return (match[1].lower(), match[2]) if match else (None, line)


def _include_base(path: Path) -> Path:
    """Where a relative Include points: /etc/ssh for the system file, else the user's ~/.ssh."""
    try:
        system = Path(path).resolve().is_relative_to("/etc/ssh")
    except (OSError, RuntimeError):
        system = False
    return Path("/etc/ssh") if system else Path.home() / ".ssh"


def _included(arguments: str, base: Path, where: str, depth: int) -> list[str]:
    """The text of each file an Include's arguments name, in the order OpenSSH reads them."""
    if depth >= MAX_DEPTH:
        raise InputError(f"{where}: Include nested more than {MAX_DEPTH} deep (does a file include itself?)")
    try:
        patterns = shlex.split(arguments, comments=True)
    except ValueError as error:
        raise InputError(f"{where}: Include {shown(arguments)}: {error}") from None
    if not patterns:
        raise InputError(f"{where}: Include names no file")
    texts = []
    for pattern in patterns:
        expanded = expand_home(pattern)
        expanded = expanded if expanded.is_absolute() else base / expanded
        for found in sorted(glob.glob(str(expanded))):
            check_owner_and_mode(Path(found))
            data = read_input_bytes(found, InputError, what=f"ssh config (included at {where})").data
            text = decode_input(data, found, InputError, what="ssh config")
            texts.append(expand_includes(text, Path(found), base, depth + 1).rstrip("\n"))
    return texts


def check_owner_and_mode(path: Path) -> None:
    """Refuse an ssh config that someone else could have written, as ssh does for ~/.ssh/config and
    every file an Include reads: it may name a ProxyCommand, which runs as this user.

    Owned by root or this user, writable by no others, and by its group only when the owner is that
    group's one member (a user private group): Debian's ssh allows that much, and no one else can write.
    """
    try:
        info = os.stat(path)
    except OSError as error:
        raise InputError(f"{path}: cannot read ssh config: {error.strerror or error}") from None
    uid = os.getuid()
    if info.st_uid not in (0, uid) or info.st_mode & 0o002 or (info.st_mode & 0o020 and not _private_group(info)):
        raise InputError(
            f"{path}: bad owner or permissions (uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}), "
            f"which ssh refuses too: make it yours and writable by you alone (chmod go-w {path})"
        )


def _private_group(info: os.stat_result) -> bool:
    """Debian's ssh on a group-writable file: safe when the group's one member is this user (no other
    user has it as primary group; its member list is at most the file's owner)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(info.st_gid)
        owner = pwd.getpwuid(info.st_uid)
    except KeyError:
        return False
    primary = {user.pw_uid for user in pwd.getpwall() if user.pw_gid == info.st_gid}
    if primary - {os.getuid()} or group.gr_mem[1:] or group.gr_mem[:1] not in ([], [owner.pw_name]):
        return False
    return bool(primary or group.gr_mem)
