"""The SQLite ledger store. Every method is one short transaction on its own connection, so threads
and processes can share the file; writes take the database lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from agent.errors import LedgerError
from agent.secrets import mask

SCHEMA_VERSION = 1
LEDGER_ENV = "ISPAGENT_LEDGER"
LOCK_LEASE_SECONDS = 900.0  # a lock of a process on another machine is taken over after this
LOCK_WAIT_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY, remoteid TEXT NOT NULL UNIQUE, address TEXT NOT NULL, fqdn TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY, host_name TEXT, ip TEXT NOT NULL, edition TEXT, period TEXT,
    action TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'held',  -- held | gone
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS licenses_host ON licenses (host_name, state);
CREATE TABLE IF NOT EXISTS order_intents (
    host_name TEXT PRIMARY KEY, remoteid TEXT NOT NULL, ip TEXT NOT NULL, edition TEXT NOT NULL,
    period TEXT NOT NULL, state TEXT NOT NULL,  -- ordering | done | refused
    attempts INTEGER NOT NULL, license_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS host_locks (
    host_name TEXT PRIMARY KEY, owner TEXT NOT NULL, machine TEXT NOT NULL, pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS activations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, license_id TEXT NOT NULL, host_name TEXT NOT NULL,
    fqdn TEXT NOT NULL, remoteid TEXT NOT NULL, ip TEXT NOT NULL, edition TEXT, period TEXT,
    state TEXT NOT NULL,  -- pending | confirmed
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at TEXT NOT NULL, confirmed_at TEXT,
    UNIQUE (license_id, host_name));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, host_name TEXT,
    license_id TEXT, detail TEXT NOT NULL);
"""


def default_ledger_path(vars: Mapping[str, Any] | None = None, state_dir: Path | None = None) -> Path:
    """`ledger_path` var, else $ISPAGENT_LEDGER, else <state dir>/ledger.sqlite.

    The state dir is the run's (`run --state-dir`), else $ISPAGENT_STATE_DIR or the default: a
    lab demo with its own state dir must not write into the partner's real ledger.
    """
    from agent.journal import default_state_dir

    configured = (vars or {}).get("ledger_path") or os.environ.get(LEDGER_ENV)
    if configured:
        return Path(str(configured)).expanduser()
    return (state_dir or default_state_dir()) / "ledger.sqlite"


_opened: dict[Path, LicenseLedger] = {}
_opened_lock = threading.Lock()


def open_ledger(path: Path) -> LicenseLedger:
    """The process's ledger for `path` (created with its schema on first use)."""
    path = path.absolute()
    with _opened_lock:
        if path not in _opened:
            _opened[path] = LicenseLedger(path)
        return _opened[path]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LedgerHost:
    name: str
    remoteid: str  # sent to the account as `remoteid`: finds our licenses when a reply was lost
    address: str
    fqdn: str | None


@dataclass(frozen=True)
class LedgerLicense:
    id: str
    host_name: str | None
    ip: str
    edition: str | None
    period: str | None
    action: str
    state: str


@dataclass(frozen=True)
class OrderIntent:
    host_name: str
    remoteid: str
    ip: str
    edition: str
    period: str
    state: str
    attempts: int
    license_id: str | None


@dataclass(frozen=True)
class Activation:
    id: int
    license_id: str
    host_name: str
    fqdn: str
    remoteid: str
    ip: str
    edition: str | None
    period: str | None
    state: str
    attempts: int


class HostLocked(LedgerError):
    """Another ispagent process is licensing this host right now."""


class LicenseLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.Error as error:
            raise LedgerError(f"ledger {path}: {error}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")  # an intent must survive a power cut, not only a crash
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._connect() as db:
            return db.execute(sql, args).fetchall()

    # -- hosts -----------------------------------------------------------------------------

    def host(self, name: str, address: str, fqdn: str | None) -> LedgerHost:
        """The ledger's record of host `name`, created (with a new remoteid) on first sight."""
        with self._write() as db:
            row = db.execute("SELECT * FROM hosts WHERE name=?", (name,)).fetchone()
            now = utc_now()
            if row is None:
                remoteid = "isp-" + secrets.token_hex(8)
                db.execute("INSERT INTO hosts VALUES (?, ?, ?, ?, ?, ?)", (name, remoteid, address, fqdn, now, now))
                return LedgerHost(name, remoteid, address, fqdn)
            if (row["address"], row["fqdn"]) != (address, fqdn):
                db.execute("UPDATE hosts SET address=?, fqdn=?, updated_at=? WHERE name=?", (address, fqdn, now, name))
            return LedgerHost(name, row["remoteid"], address, fqdn)

    def hosts(self) -> list[LedgerHost]:
        return [LedgerHost(r["name"], r["remoteid"], r["address"], r["fqdn"]) for r in self._rows("SELECT * FROM hosts ORDER BY name")]

    # -- licenses --------------------------------------------------------------------------

    def license_of_host(self, host_name: str) -> LedgerLicense | None:
        rows = self._rows("SELECT * FROM licenses WHERE host_name=? AND state='held' ORDER BY updated_at DESC", (host_name,))
        return _license(rows[0]) if rows else None

    def licenses(self, state: str | None = "held") -> list[LedgerLicense]:
        if state is None:
            return [_license(r) for r in self._rows("SELECT * FROM licenses ORDER BY id")]
        return [_license(r) for r in self._rows("SELECT * FROM licenses WHERE state=? ORDER BY id", (state,))]

    def record_license(self, license_id: str, host_name: str | None, ip: str, edition: str | None,
                       period: str | None, action: str) -> None:
        """Remember that `license_id` serves `host_name` (a host holds one license: others are released)."""
        with self._write() as db:
            self._record_license(db, license_id, host_name, ip, edition, period, action)

    def _record_license(self, db, license_id, host_name, ip, edition, period, action) -> None:
        now = utc_now()
        if host_name:
            db.execute("UPDATE licenses SET state='gone', updated_at=? WHERE host_name=? AND id<>? AND state='held'",
                       (now, host_name, license_id))
        db.execute(
            "INSERT INTO licenses VALUES (?, ?, ?, ?, ?, ?, 'held', ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "host_name=excluded.host_name, ip=excluded.ip, edition=COALESCE(excluded.edition, edition), "
            "period=COALESCE(excluded.period, period), state='held', updated_at=excluded.updated_at",
            (license_id, host_name, ip, edition, period, action, now, now),
        )
        self._event(db, f"license.{action}", host_name, license_id, {"ip": ip, "edition": edition, "period": period})

    def forget_license(self, license_id: str, reason: str) -> None:
        with self._write() as db:
            db.execute("UPDATE licenses SET state='gone', updated_at=? WHERE id=?", (utc_now(), license_id))
            self._event(db, "license.gone", None, license_id, {"reason": reason})

    def claim_license(self, license_id: str, host_name: str, ip: str, edition: str | None, period: str | None) -> bool:
        """Reserve a free license for `host_name`; False if another host already holds it."""
        with self._write() as db:
            row = db.execute("SELECT host_name, state FROM licenses WHERE id=?", (license_id,)).fetchone()
            if row and row["state"] == "held" and row["host_name"] not in (None, host_name):
                return False
            self._record_license(db, license_id, host_name, ip, edition, period, "reused")
            return True

    # -- orders ----------------------------------------------------------------------------

    def order_intent(self, host_name: str) -> OrderIntent | None:
        rows = self._rows("SELECT * FROM order_intents WHERE host_name=?", (host_name,))
        return _intent(rows[0]) if rows else None

    def begin_order(self, host: LedgerHost, ip: str, edition: str, period: str) -> OrderIntent:
        """Durably record "about to order for this host" before the order leaves."""
        with self._write() as db:
            now = utc_now()
            db.execute(
                "INSERT INTO order_intents VALUES (?, ?, ?, ?, ?, 'ordering', 1, NULL, ?, ?) ON CONFLICT (host_name) "
                "DO UPDATE SET remoteid=excluded.remoteid, ip=excluded.ip, edition=excluded.edition, "
                "period=excluded.period, state='ordering', attempts=attempts+1, license_id=NULL, updated_at=excluded.updated_at",
                (host.name, host.remoteid, ip, edition, period, now, now),
            )
            self._event(db, "order.intent", host.name, None, {"ip": ip, "edition": edition, "period": period})
            row = db.execute("SELECT * FROM order_intents WHERE host_name=?", (host.name,)).fetchone()
            return _intent(row)

    def finish_order(self, host_name: str, license_id: str, ip: str, edition: str, period: str) -> None:
        """The order's license id is known: record it and close the intent, in one transaction."""
        with self._write() as db:
            db.execute("UPDATE order_intents SET state='done', license_id=?, updated_at=? WHERE host_name=?",
                       (license_id, utc_now(), host_name))
            self._record_license(db, license_id, host_name, ip, edition, period, "ordered")

    def refuse_order(self, host_name: str, reason: str) -> None:
        """The account refused the order: provably nothing was bought."""
        with self._write() as db:
            db.execute("UPDATE order_intents SET state='refused', updated_at=? WHERE host_name=?", (utc_now(), host_name))
            self._event(db, "order.refused", host_name, None, {"reason": reason})

    # -- per-host lock ---------------------------------------------------------------------

    @contextmanager
    def host_lock(self, host_name: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the host's lock row: two processes never work on one host's license at once.

        A lock left by a dead process on this machine is taken over at once (after a SIGKILL, the
        resumed run must not wait); one from another machine only when its lease expired.
        """
        me = _Owner.current()
        deadline = time.monotonic() + wait
        while True:
            holder = self._try_lock(host_name, me)
            if holder is None:
                break
            if time.monotonic() > deadline:
                raise HostLocked(f"{host_name}: another ispagent process ({holder}) is licensing this host; try again when it ends")
            time.sleep(0.2)
        try:
            yield
        finally:
            with self._write() as db:
                db.execute("DELETE FROM host_locks WHERE host_name=? AND owner=?", (host_name, me.owner))

    def _try_lock(self, host_name: str, me: _Owner) -> str | None:
        with self._write() as db:
            row = db.execute("SELECT * FROM host_locks WHERE host_name=?", (host_name,)).fetchone()
            if row and row["owner"] != me.owner and not _stale(row):
                return f"pid {row['pid']} on {row['machine']}"
            db.execute(
                "INSERT OR REPLACE INTO host_locks VALUES (?, ?, ?, ?, ?, ?)",
                (host_name, me.owner, me.machine, me.pid, me.pid_start, time.time() + LOCK_LEASE_SECONDS),
            )
            return None

    # -- activations (outbox) --------------------------------------------------------------

    def queue_activation(self, license_id: str, host: LedgerHost, ip: str, edition: str | None, period: str | None) -> None:
        """Record that `host` runs on `license_id`; pending until the account confirms it."""
        with self._write() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO activations (license_id, host_name, fqdn, remoteid, ip, edition, period, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (license_id, host.name, host.fqdn or host.name, host.remoteid, ip, edition, period, utc_now()),
            ).rowcount
            if inserted:
                self._event(db, "activation.queued", host.name, license_id, {"fqdn": host.fqdn})

    def activations(self, host_name: str | None = None, state: str | None = None) -> list[Activation]:
        sql, args = "SELECT * FROM activations WHERE 1=1", []
        if host_name:
            sql, args = sql + " AND host_name=?", args + [host_name]
        if state:
            sql, args = sql + " AND state=?", args + [state]
        return [_activation(r) for r in self._rows(sql + " ORDER BY id", tuple(args))]

    def confirm_activation(self, activation: Activation) -> None:
        with self._write() as db:
            db.execute("UPDATE activations SET state='confirmed', confirmed_at=?, attempts=attempts+1, last_error=NULL"
                       " WHERE id=?", (utc_now(), activation.id))
            self._event(db, "activation.confirmed", activation.host_name, activation.license_id, {})

    def activation_failed(self, activation: Activation, error: str) -> None:
        with self._write() as db:
            db.execute("UPDATE activations SET attempts=attempts+1, last_error=? WHERE id=?", (mask(error), activation.id))

    # -- events ----------------------------------------------------------------------------

    def event(self, kind: str, host_name: str | None, license_id: str | None, **detail: Any) -> None:
        with self._write() as db:
            self._event(db, kind, host_name, license_id, detail)

    def events(self) -> list[dict]:
        return [dict(r) for r in self._rows("SELECT * FROM events ORDER BY id")]

    @staticmethod
    def _event(db, kind: str, host_name: str | None, license_id: str | None, detail: dict) -> None:
        db.execute("INSERT INTO events (at, kind, host_name, license_id, detail) VALUES (?, ?, ?, ?, ?)",
                   (utc_now(), kind, host_name, license_id, mask(json.dumps(detail, sort_keys=True))))


@dataclass(frozen=True)
class _Owner:
    owner: str
    machine: str
    pid: int
    pid_start: str

    @classmethod
    def current(cls) -> _Owner:
        machine, pid = socket.gethostname(), os.getpid()
        start = _process_start(pid)
        return cls(f"{machine}:{pid}:{start}:{threading.get_ident()}", machine, pid, start)


def _process_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _stale(row: sqlite3.Row) -> bool:
    if row["machine"] == socket.gethostname():
        return _process_start(row["pid"]) != row["pid_start"]  # dead, or the pid was reused
    return row["expires"] < time.time()


def _license(row: sqlite3.Row) -> LedgerLicense:
    return LedgerLicense(row["id"], row["host_name"], row["ip"], row["edition"], row["period"], row["action"], row["state"])


def _intent(row: sqlite3.Row) -> OrderIntent:
    return OrderIntent(row["host_name"], row["remoteid"], row["ip"], row["edition"], row["period"], row["state"],
                       row["attempts"], row["license_id"])


def _activation(row: sqlite3.Row) -> Activation:
    return Activation(row["id"], row["license_id"], row["host_name"], row["fqdn"], row["remoteid"], row["ip"],
                      row["edition"], row["period"], row["state"], row["attempts"])
