"""Where the ledger is."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.ledger.database import LEDGER_URL_ENV
from agent.statedir import default_state_dir
from agent.userpath import expand_home

LEDGER_ENV = "ISPAGENT_LEDGER"


def ledger_location(vars: Mapping[str, Any] | None = None, state_dir: Path | None = None) -> str | Path:
    """Where the ledger is: `ledger_url` var or $ISPAGENT_LEDGER_URL (a database URL), else the
    SQLite file of `ledger_path` or $ISPAGENT_LEDGER, else <state dir>/ledger.sqlite.

    The state dir is the run's (`run --state-dir`), else $ISPAGENT_STATE_DIR or the default: a
    lab demo with its own state dir must not write into the partner's real ledger.
    """
    vars = vars or {}
    url = vars.get("ledger_url") or os.environ.get(LEDGER_URL_ENV)
    if url:
        return str(url)
    configured = vars.get("ledger_path") or os.environ.get(LEDGER_ENV)
    if configured:
        return expand_home(str(configured))
    return (state_dir or default_state_dir()) / "ledger.sqlite"
