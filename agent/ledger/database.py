"""The ledger's database: one engine (SQLite or PostgreSQL), short transactions, migrations, close.

Every read and write is one short transaction on a pooled connection, so threads and processes can
share the ledger. Both halves of the ledger, licensing (`licenses.py`) and billing (`billing.py`),
work through one `LedgerDatabase`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Executable, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import LedgerError
from agent.ledger import schema
from agent.ledger.backend import LedgerBackend, backend_for
from agent.secrets import mask

LEDGER_URL_ENV = "ISPAGENT_LEDGER_URL"
LOCK_WAIT_SECONDS = 60.0


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_today() -> str:
    """The ledger's dates are UTC days."""
    return datetime.now(timezone.utc).date().isoformat()


class LedgerDatabase:
    """The database at `location` (a SQLite path or a URL), created or migrated when opened."""

    def __init__(self, location: str | Path) -> None:
        self.backend: LedgerBackend = backend_for(location)
        self.engine = self.backend.engine
        self.shown = self.backend.shown  # the URL with its password masked, or the file
        self.path: Path | None = getattr(self.backend, "path", None)
        self.closed = False
        with self.write() as db:
            self.backend.migration_lock(db)
            schema.migrate(db, utc_now())

    def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        if not self.closed:
            self.closed = True
            self.backend.dispose()

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Database failures become one LedgerError line naming the ledger (password masked) and the fix."""
        try:
            yield
        except LedgerError:
            raise
        except SQLAlchemyError as error:
            first = (
                str(getattr(error, "orig", None) or error).strip().splitlines()[0]
                if str(error).strip()
                else type(error).__name__
            )
            hint = ""
            if "connect" in first.lower() or "password authentication" in first.lower():
                hint = f"; check that the database is running and reachable, or fix ledger_url / ${LEDGER_URL_ENV}"
            raise LedgerError(mask(f"ledger {self.shown}: {first}{hint}")) from None
        except OSError as error:
            raise LedgerError(mask(f"ledger {self.shown}: {error}")) from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction. `ledger_write` tells the backend up front (SQLite: BEGIN IMMEDIATE)."""
        with self.guarded(), self.engine.connect() as db:
            db.execution_options(ledger_write=True)
            with db.begin():
                yield db

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.guarded(), self.engine.connect() as db:
            yield db

    def rows(self, statement: Executable) -> list[RowMapping]:
        with self.read() as db:
            return list(db.execute(statement).mappings())

    def scalar(self, statement: Executable) -> Any:
        with self.read() as db:
            return db.execute(statement).scalar()

    def schema_version(self) -> int:
        with self.read() as db:
            return schema.applied_version(db)

    @contextmanager
    def host_lock(self, host_name: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the host's lock. Only taking and giving it back are guarded: errors of the work done
        under it reach the caller as they are."""
        with self.guarded():
            held = self.backend.lock_host(host_name, wait)
        try:
            yield
        finally:
            with self.guarded():
                held.release()
