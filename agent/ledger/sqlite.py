"""The SQLite backend: one file, WAL, fsynced commits; host locks are lease rows.

Writes take the database lock up front (BEGIN IMMEDIATE), so a read-then-write transaction never
fails half way with "database is locked"; reads start a deferred transaction and block nobody.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, RowMapping, create_engine, event, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import URL

from agent.errors import HostLocked, LedgerError
from agent.ledger import schema

LOCK_LEASE_SECONDS = 900.0  # a lock of a process on another machine is taken over after this


class SqliteBackend:
    name = "sqlite"
    insert = staticmethod(insert)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as problem:  # --ledger /proc/x/ledger.db, a file where a directory should be
            raise LedgerError(f"ledger {path}: cannot create its directory: {problem.strerror or problem}") from None
        self.engine = _engine(path)
        self._writers = threading.RLock()

    @classmethod
    def from_url(cls, url: URL) -> SqliteBackend:
        return cls(Path(url.database or "ledger.sqlite").absolute())

    def migration_lock(self, db: Connection) -> None:
        """Nothing to do: the migration's transaction is BEGIN IMMEDIATE."""

    def lock_host(self, host_name: str, wait: float) -> _LeaseLock:
        """A lock row per host. A lock left by a dead process on this machine is taken over at once
        (after a SIGKILL the resumed run must not wait); one from another machine when its lease ends."""
        me = _Owner.current()
        deadline = time.monotonic() + wait
        while True:
            holder = self._try_lock(host_name, me)
            if holder is None:
                return _LeaseLock(self, host_name, me.owner)
            if time.monotonic() > deadline:
                raise HostLocked(
                    f"{host_name}: another ispagent process ({holder}) is licensing this host; try again when it ends"
                )
            time.sleep(0.2)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE).

        This process's writers queue on a lock before taking a pooled connection: SQLite writes
        one at a time anyway, and when they queued inside SQLite each waiter held one of the pool's
        15 connections, so at 250 forks the other hosts failed with "QueuePool limit ... reached".
        """
        with self._writers, self.engine.connect() as db:
            db.execution_options(ledger_write=True)
            with db.begin():
                yield db

    def _try_lock(self, host_name: str, me: _Owner) -> str | None:
        locks = schema.host_locks
        with self.write() as db:
            row = db.execute(select(locks).where(locks.c.host_name == host_name)).mappings().first()
            if row and row["owner"] != me.owner and not _stale(row):
                return f"pid {row['pid']} on {row['machine']}"
            values = dict(
                host_name=host_name,
                owner=me.owner,
                machine=me.machine,
                pid=me.pid,
                pid_start=me.pid_start,
                expires=time.time() + LOCK_LEASE_SECONDS,
            )
            statement = insert(locks).values(**values)
            db.execute(statement.on_conflict_do_update(index_elements=["host_name"], set_=values))
            return None


@dataclass
class _LeaseLock:
    backend: SqliteBackend
    host_name: str
    owner: str

    def release(self) -> None:
        locks = schema.host_locks
        with self.backend.write() as db:
            db.execute(locks.delete().where((locks.c.host_name == self.host_name) & (locks.c.owner == self.owner)))


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, record: object) -> None:
        _use_wal(dbapi_connection)
        dbapi_connection.execute("PRAGMA synchronous=FULL")  # an intent must survive a power cut, not only a crash

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql(
            "BEGIN IMMEDIATE" if connection.get_execution_options().get("ledger_write") else "BEGIN"
        )

    return engine


def _use_wal(dbapi_connection: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch the file to WAL (it stays so), unless it already is.

    Switching needs the file to itself and SQLite answers "database is locked" at once, without
    waiting, when another connection is writing: two processes opening a new ledger together (one
    migrating it) would fail. So: look first, and while the switch is refused, wait and look again.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class _Owner:
    owner: str
    machine: str
    pid: int
    pid_start: str

    @classmethod
    def current(cls) -> _Owner:
        machine, pid = socket.gethostname(), os.getpid()
        start = process_start(pid)
        return cls(f"{machine}:{pid}:{start}:{threading.get_ident()}", machine, pid, start)


def process_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _stale(row: RowMapping) -> bool:
    if row["machine"] == socket.gethostname():
        return bool(process_start(row["pid"]) != row["pid_start"])  # dead, or the pid was reused
    return bool(row["expires"] < time.time())


BACKEND = SqliteBackend
