"""Where the ledger is, and the process's open ledgers."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Mapping

from agent.ledger.database import LEDGER_URL_ENV
from agent.ledger.licenses import LicenseLedger
from agent.statedir import default_state_dir

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
        return Path(str(configured)).expanduser()
    return (state_dir or default_state_dir()) / "ledger.sqlite"


default_ledger_path = ledger_location  # the name the steps use; it may now also be a URL

_opened: dict[str, LicenseLedger] = {}
_opened_lock = threading.Lock()


def open_ledger(location: str | Path) -> LicenseLedger:
    """The process's ledger at `location` (created, or migrated to the current schema, on first use).

    Shared and never closed by this cache; a ledger closed by its user is opened again on the next call.
    """
    key = str(location.absolute()) if isinstance(location, Path) else str(location)
    with _opened_lock:
        if key not in _opened or _opened[key].closed:
            _opened[key] = LicenseLedger(location)
        return _opened[key]
