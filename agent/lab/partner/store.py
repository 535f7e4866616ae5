"""The emulated account's state: accounts with balances (in cents) and an "unpaid invoice" switch,
and their licenses, in SQLite. One connection, one lock: correctness over speed."""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from agent.clock import UTC
from agent.lab.partner.rules import (
    LIVE_STATUSES,
    STATUS_ACTIVE,
    STATUS_DELETED,
    STATUS_ORDERED,
    STATUS_SUSPENDED,
    ApiError,
    expiry,
    tariff,
)

FIRST_LICENSE_ID = 3100000


class AccountStore:
    """Accounts and licenses in SQLite. One connection, one lock: correctness over speed."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS account (
                user TEXT PRIMARY KEY, password TEXT NOT NULL, balance_cents INTEGER NOT NULL,
                unpaid INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS licenses (
                id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, pricelist TEXT NOT NULL,
                period INTEGER NOT NULL, ip TEXT NOT NULL, licname TEXT NOT NULL, remoteid TEXT NOT NULL,
                status INTEGER NOT NULL, lickey TEXT NOT NULL, key_ready_at REAL NOT NULL,
                createdate TEXT NOT NULL, expiredate TEXT NOT NULL);
            """
        )
        with self.lock:
            if not self.db.execute("SELECT 1 FROM sqlite_sequence WHERE name='licenses'").fetchone():
                self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('licenses', ?)", (FIRST_LICENSE_ID,))

    def ensure_account(self, user: str, password: str | None = None, balance: float = 100000.0) -> str:
        with self.lock:
            row = self.db.execute("SELECT password FROM account WHERE user=?", (user,)).fetchone()
            if row:
                return row["password"]
            password = password or secrets.token_urlsafe(18)
            self.db.execute("INSERT INTO account VALUES (?, ?, ?, 0)", (user, password, _cents(balance)))
            return password

    def update_account(self, user: str, **changes: Any) -> None:
        """Change `password`, `balance` (EUR) or `unpaid`."""
        with self.lock:
            if "password" in changes:
                self.db.execute("UPDATE account SET password=? WHERE user=?", (changes["password"], user))
            if "balance" in changes:
                self.db.execute("UPDATE account SET balance_cents=? WHERE user=?", (_cents(changes["balance"]), user))
            if "unpaid" in changes:
                self.db.execute("UPDATE account SET unpaid=? WHERE user=?", (int(changes["unpaid"]), user))

    def account(self, user: str) -> dict | None:
        """The account's row, with `balance` in EUR beside `balance_cents`."""
        with self.lock:
            row = self.db.execute("SELECT * FROM account WHERE user=?", (user,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "balance": row["balance_cents"] / 100}

    def licenses(self, account: str | None = None) -> list[dict]:
        with self.lock:
            if account is None:
                rows = self.db.execute("SELECT * FROM licenses ORDER BY id").fetchall()
            else:
                rows = self.db.execute("SELECT * FROM licenses WHERE account=? ORDER BY id", (account,)).fetchall()
        return [dict(row) for row in rows]

    def license(self, account: str, elid: str) -> dict:
        with self.lock:
            row = self.db.execute("SELECT * FROM licenses WHERE id=? AND account=?", (elid, account)).fetchone()
        if row is None or row["status"] == STATUS_DELETED:
            raise ApiError("missed")
        return dict(row)

    def live_license_on(self, account: str, ip: str) -> bool:
        with self.lock:
            row = self.db.execute(
                "SELECT 1 FROM licenses WHERE account=? AND ip=? AND status != ?", (account, ip, STATUS_DELETED)
            ).fetchone()
        return row is not None

    def order(
        self, account: str, pricelist: str, period: int, ip: str, licname: str, remoteid: str, key_delay: float
    ) -> int:
        with self._charged(account, tariff(pricelist).price(period)):
            today = UTC.today()  # the account's day is a UTC day, as ispagent's clock says
            cursor = self.db.execute(
                "INSERT INTO licenses (account, pricelist, period, ip, licname, remoteid, status, lickey,"
                " key_ready_at, createdate, expiredate) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)",
                (
                    account,
                    pricelist,
                    period,
                    ip,
                    licname,
                    remoteid,
                    STATUS_ORDERED,
                    time.time() + key_delay,
                    today.isoformat(),
                    expiry(today, period).isoformat(),
                ),
            )
            elid = cursor.lastrowid
            self.db.execute("UPDATE licenses SET lickey=? WHERE id=?", (f"{elid}-{secrets.token_hex(12)}", elid))
            return elid

    @contextmanager
    def _charged(self, account: str, cents: int) -> Iterator[None]:
        """A transaction that debits `cents` with the caller's changes, all or nothing; or the API's refusal."""
        with self.lock:
            user = self.db.execute("SELECT * FROM account WHERE user=?", (account,)).fetchone()
            if user["unpaid"]:
                raise ApiError("unpaid")
            if user["balance_cents"] < cents:
                raise ApiError("funds")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("UPDATE account SET balance_cents=balance_cents-? WHERE user=?", (cents, account))
                yield
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def update_license(self, elid: int, **changes: Any) -> None:
        with self.lock:
            for column, value in changes.items():
                self.db.execute(f"UPDATE licenses SET {column}=? WHERE id=?", (value, elid))

    def prolong(self, account: str, lic: dict, period: int) -> str:
        with self._charged(account, tariff(lic["pricelist"]).price(period)):
            expire = expiry(max(date.fromisoformat(lic["expiredate"]), UTC.today()), period).isoformat()
            status = STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"]
            self.db.execute("UPDATE licenses SET expiredate=?, status=? WHERE id=?", (expire, status, lic["id"]))
            return expire

    def find_for_fetch(self, key: str, ip: str) -> dict | None:
        with self.lock:
            if key:
                row = self.db.execute(
                    "SELECT * FROM licenses WHERE lickey=? AND status IN (?, ?, ?)", (key, *LIVE_STATUSES)
                ).fetchone()
            else:
                row = self.db.execute(
                    "SELECT * FROM licenses WHERE ip=? AND status IN (?, ?, ?) ORDER BY id LIMIT 1",
                    (ip, *LIVE_STATUSES),
                ).fetchone()
        return dict(row) if row else None


def _cents(euros: Any) -> int:
    return round(float(euros) * 100)
