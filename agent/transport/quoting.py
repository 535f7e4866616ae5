"""Shell quoting: how an argument list becomes one line for the host's POSIX shell."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def command_line(argv: Sequence[str]) -> str:
    """One shell command line from `argv`, every word quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(word)) for word in argv)


def remote_line(command: str | Sequence[str], sudo: bool) -> str:
    """The line the host's shell gets: `command` as written (or argv quoted), run as root through
    `sudo -n` when `sudo` (never a password prompt)."""
    line = command if isinstance(command, str) else command_line(command)
    return command_line(["sudo", "-n", "--", "sh", "-c", line]) if sudo else line
