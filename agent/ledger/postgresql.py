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
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

LOCK_NAMESPACE = 0x15_9A  # first key of the two-int advisory lock: ispagent host locks


class PostgresBackend:
    name = "postgresql"
    insert = staticmethod(insert)

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.shown = parsed.render_as_string(hide_password=True)
        application = {"application_name": f"ispagent {socket.gethostname()}:{os.getpid()}"[:63], "connect_timeout": 10}
        self.engine = create_engine(parsed, pool_size=5, max_overflow=10, pool_timeout=60, pool_pre_ping=True,
                                    connect_args=application)
        # Lock connections live as long as a host is being licensed: kept out of the shared pool.
        self.lock_engine: Engine = create_engine(parsed, poolclass=NullPool, connect_args=application)

    def migration_lock(self, db) -> None:
        """Two agents opening a new ledger at once: one migrates, the other waits and finds it done."""
        db.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": LOCK_NAMESPACE})

    @contextmanager
    def host_lock(self, ledger, host_name: str, wait: float) -> Iterator[None]:
        from agent.errors import HostLocked

        key = {"ns": LOCK_NAMESPACE, "key": zlib.crc32(host_name.encode()) & 0x7FFF_FFFF}
        with ledger._guarded(), self.lock_engine.connect() as db:
            db = db.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + wait
            while not db.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), key).scalar():
                if time.monotonic() > deadline:
                    holder = _holder(db, key)
                    raise HostLocked(f"{host_name}: another ispagent process ({holder}) is licensing this host; try again when it ends")
                time.sleep(0.2)
            try:
                yield
            finally:
                db.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), key)


def _holder(db, key: dict) -> str:
    row = db.execute(text(
        "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:key AS oid) AND l.granted"
    ), key).first()
    if row is None:
        return "it just finished"
    return f"{row[0] or 'unknown'} from {row[1] or 'local socket'}"
