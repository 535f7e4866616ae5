"""The PostgreSQL backend: one ledger shared by several agents (a team, several machines).

A host's lock is a session-level advisory lock held on a connection of its own for the whole of
plan + order: a second agent asking for the same host waits, and a crashed agent's lock goes away
with its connection (no lease to wait out). Each licensing thread holds one such connection, so
PostgreSQL's max_connections must exceed, per agent, `--forks` plus the pool (5 + 10).
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from agent.errors import HostLocked

LOCK_NAMESPACE = 0x15_9A  # first key of the two-int advisory lock: ispagent host locks


class PostgresBackend:
    name = "postgresql"
    insert = staticmethod(insert)

    def __init__(self, url: URL) -> None:
        self.shown = url.render_as_string(hide_password=True)
        application = {"application_name": f"ispagent {socket.gethostname()}:{os.getpid()}"[:63], "connect_timeout": 10}
        self.engine = create_engine(
            url, pool_size=5, max_overflow=10, pool_timeout=60, pool_pre_ping=True, connect_args=application
        )
        # Lock connections live as long as a host is being licensed: kept out of the shared pool.
        self.lock_engine: Engine = create_engine(url, poolclass=NullPool, connect_args=application)

    @classmethod
    def from_url(cls, url: URL) -> PostgresBackend:
        return cls(url)

    def migration_lock(self, db: Connection) -> None:
        """Two agents opening a new ledger at once: one migrates, the other waits and finds it done."""
        db.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": LOCK_NAMESPACE})

    def lock_host(self, host_name: str, wait: float) -> _AdvisoryLock:
        key = {"ns": LOCK_NAMESPACE, "key": zlib.crc32(host_name.encode()) & 0x7FFF_FFFF}
        db = self.lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + wait
            while not db.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), key).scalar():
                if time.monotonic() > deadline:
                    holder = _holder(db, key)
                    raise HostLocked(
                        f"{host_name}: another ispagent process ({holder}) is licensing this host; try again when it ends"
                    )
                time.sleep(0.2)
        except BaseException:
            db.close()
            raise
        return _AdvisoryLock(db, key)

    def dispose(self) -> None:
        self.engine.dispose()
        self.lock_engine.dispose()


@dataclass
class _AdvisoryLock:
    db: Connection
    key: dict[str, int]

    def release(self) -> None:
        try:
            self.db.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), self.key)
        finally:
            self.db.close()


def _holder(db: Connection, key: dict[str, int]) -> str:
    row = db.execute(
        text(
            "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid) AND l.granted"
        ),
        key,
    ).first()
    if row is None:
        return "it just finished"
    return f"{row[0] or 'unknown'} from {row[1] or 'local socket'}"


BACKEND = PostgresBackend
