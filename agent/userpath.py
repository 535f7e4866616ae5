"""Paths as a user writes them: `~` and `~user` expanded the way a shell does."""

from __future__ import annotations

from pathlib import Path

from agent.errors import InputError
from agent.secrets import shown


class HomeUnknown(InputError):
    """`~user` names a user this machine does not have (or `~` with no home directory)."""


def expand_home(written: str | Path) -> Path:
    """`written` with a leading `~` or `~user` replaced by that home directory.

    pathlib raises a bare RuntimeError for a user it cannot find (`~:/.ssh/key`, a typo of `~/`);
    this says which user and how to write the path instead.
    """
    path = Path(written)
    try:
        return path.expanduser()
    except RuntimeError:
        user = str(written)[1:].split("/", 1)[0]
        who = f"no user {shown(user)}" if user else "no home directory for the current user"
        raise HomeUnknown(
            f"{shown(str(written))}: cannot expand '~': this machine has {who}; write the path in full"
        ) from None
