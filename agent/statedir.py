"""Where ispagent keeps what outlives a process: run journals, the ledger, locks.

Low level on purpose: the journal and the ledger both start from here and import nothing else of
ispagent's.
"""

from __future__ import annotations

import os
from pathlib import Path
from agent.userpath import expand_home

STATE_DIR_ENV = "ISPAGENT_STATE_DIR"


def default_state_dir() -> Path:
    """$ISPAGENT_STATE_DIR, else $XDG_STATE_HOME/ispagent, else ~/.local/state/ispagent."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return expand_home(env)
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return expand_home(base) / "ispagent"
