"""What a database must give the ledger, and which one a location names.

One file per database (`sqlite.py`, `postgresql.py`), each a `LedgerBackend`: the engine, its
upsert, the lock taken while migrating, and the per-host lock that keeps two processes (on one
machine or several) from licensing one host at once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from agent.errors import LedgerError
from agent.secrets import SecretRefused, mask, register_secret

BACKENDS = {"sqlite": "agent.ledger.sqlite", "postgresql": "agent.ledger.postgresql"}  # URL backend name -> module


class HostLock(Protocol):
    def release(self) -> None:
        """Give the host's lock back (a crashed holder's lock is the backend's to clear)."""


class LedgerBackend(Protocol):
    name: str
    shown: str  # where the ledger is, for messages: the file, or the URL with its password masked
    engine: Engine

    @classmethod
    def from_url(cls, url: URL) -> LedgerBackend:
        """The backend for a parsed ledger URL."""

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT, which has on_conflict_do_nothing / on_conflict_do_update."""

    def migration_lock(self, db: Connection) -> None:
        """Inside the migrating transaction: make a second process opening a new ledger wait."""

    def lock_host(self, host_name: str, wait: float) -> HostLock:
        """Take the host's lock, waiting up to `wait` seconds; HostLocked names the holder if it stays taken."""

    def dispose(self) -> None:
        """Close every pooled connection."""


def backend_for(location: str | Path) -> LedgerBackend:
    """The backend of a ledger location: a SQLite path, or a database URL."""
    if isinstance(location, Path) or "://" not in str(location):
        backend: LedgerBackend = _module("sqlite").BACKEND(Path(location).absolute())
        return backend
    try:
        url = make_url(str(location))
    except ArgumentError:
        raise LedgerError(
            "ledger_url: not a database URL; write it as postgresql+psycopg://USER:<password>@HOST/DATABASE"
        ) from None
    if url.password:
        try:
            register_secret(url.password)
        except SecretRefused as problem:
            raise LedgerError(f"ledger_url: the password: {problem}") from None
    name = url.get_backend_name()
    if name not in BACKENDS:
        raise LedgerError(
            f"ledger_url: '{name}' databases are not supported; use postgresql+psycopg://… or a SQLite path"
        )
    try:
        backend = _module(name).BACKEND.from_url(url)
    except (ImportError, SQLAlchemyError) as error:
        raise LedgerError(
            f"ledger {url.render_as_string(hide_password=True)}: {mask(str(error).splitlines()[0])}"
        ) from None
    return backend


def _module(name: str) -> ModuleType:
    """The backend's module (each ends with `BACKEND = <its class>`), imported on first use: psycopg only for PostgreSQL."""
    return importlib.import_module(BACKENDS[name])
