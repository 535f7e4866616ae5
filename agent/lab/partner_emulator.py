"""The partner account emulator: ISPsystem's BILLmanager license API, as real clients see it.

A real HTTP server (`python -m agent.lab.partner_emulator --listen HOST:PORT --state-dir DIR`,
started by `ispagent lab up`) speaking the calls, parameters, encodings and reply shapes the
public clients of the API use (Upmind, ISPsystem's WHMCS module, JBS, HostBill, ipchanger):

- requests: GET query strings (also unencoded), POST form-urlencoded (with or without a
  Content-Type), multipart/form-data; HTTP/1.0 and 1.1 (keep-alive); `/billmgr` and
  `/manager/billmgr`; `authinfo=user:password` on every call; `sok=ok` or `sok=yes`;
- functions: `soft.order.param`, `soft.edit` (read, change IP/name, new key), `soft` (list),
  `service.prolong`, `service.changepricelist`, `soft.suspend|resume|delete`, `soft.checkip`,
  `subaccount`;
- replies `out=xml|json|bjson|text`, errors with HTTP 200 in the body; a license is "ordered"
  until the server with its IP (or key) fetches it, then "active".

It also answers the lab hosts' `licctl fetch` at `/licctl/fetch`. Every connection has its own
thread and a read timeout, the listen backlog is large, and a malformed request gets an HTTP
error (400, 411, 413) rather than a traceback; values are limited in length and refused with
control characters, in the API's own error shape.

State is SQLite (DIR/partner.sqlite): accounts with balances (in cents) and an "unpaid invoice"
switch, licenses. On start it writes DIR/credentials (0600, "user:password" of the lab's account)
and DIR/admin-token (0600). Faults are read from DIR/faults.json on every call (tests may rewrite
it) or set through `POST /admin/faults`:

    {"latency": [0.0, 0.05],   # seconds before handling, uniform in [min, max]
     "error_rate": 0.3,        # HTTP 503 before anything happens
     "reset_rate": 0.1,        # connection reset before anything happens
     "drop_rate": 0.1,         # commit-then-drop: the call is done, the answer never arrives
     "key_delay": 0.2,         # seconds before an ordered license gets its activation key
     "rate_limit_rate": 0.2,   # HTTP 429 with Retry-After before anything happens
     "retry_after": 1,         # the Retry-After of those answers, in seconds
     "functions": ["soft.order.param"]}   # faults only for these functions (default: all)

`POST /admin/order-gate` holds confirmed orders past the first N ({"hold_after": N}) until
{"release": true} (with "drop": true they are refused unprocessed), so a test in another process
can set off a fault between two orders, knowing which.

What is not public and so invented here (and kept in one place each, `_ERRORS` and
`FIELD_LIMITS`): the unpaid/insufficient-funds and too-long/bad-characters errors' types and
wording, prices, the status an order has before its key exists (5), the field limits, and the
text format (`key=value` lines; an error as `ERROR type(object): message`, as mgrctl prints it).
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import os
import random
import re
import secrets
import socket
import sqlite3
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

LAB_USER = "lab-partner@example.com"
LAB_PROJECT = "ISPsystem"  # the provider the account belongs to (JBS asks `subaccount project=ISPsystem`)
PRICELISTS = {  # id -> (panel name, monthly price in cents); prices invented (not public)
    "55227": ("ISPmanager Lite", 800),
    "55228": ("ISPmanager Pro", 1400),
    "55229": ("ISPmanager Host", 2800),
    "55230": ("ISPmanager Business", 6000),
    "55239": ("ISPmanager Trial", 0),
}
FIRST_LICENSE_ID = 3100000
STATUS_ORDERED, STATUS_ACTIVE, STATUS_SUSPENDED, STATUS_DELETED, STATUS_PROCESSING = 1, 2, 3, 4, 5
API_PATHS = ("/billmgr", "/manager/billmgr")
READ_TIMEOUT = 10.0  # seconds a connection may stay silent (before its request, or between requests)
LISTEN_BACKLOG = 1024
MAX_BODY = 2 * 1024 * 1024  # bytes; a longer request gets 413 before its body is read
MAX_FIELDS = 200
FIELD_LIMITS = {"licname": 255, "remoteid": 255, "ip": 45, "authinfo": 512, "func": 64, "out": 16}
DEFAULT_FIELD_LIMIT = 4096
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_ERRORS = {
    "auth": ("auth", "", "Invalid username or password"),
    "unpaid": ("payment", "", "Ordering is blocked: the account has an unpaid invoice"),
    "funds": ("payment", "", "Insufficient funds on the account balance"),
    "missed": ("missed", "elid", "Object not found"),
    "ip": ("value", "ip", "Invalid IP address"),
    "ip_taken": ("value", "ip", "This IP address already has a license"),
    "pricelist": ("value", "pricelist", "Unknown tariff"),
    "period": ("value", "period", "Invalid period"),
    "func": ("missed", "func", "Unknown function"),
    "too_long": ("value", "{field}", "The value of '{field}' is too long: at most {limit} characters"),
    "characters": ("value", "{field}", "The value of '{field}' contains characters that are not allowed"),
}


class ApiError(Exception):
    """An error the API reports in its reply body (HTTP 200)."""

    def __init__(self, name: str, **details: Any) -> None:
        super().__init__(name)
        kind, target, message = _ERRORS[name]
        self.kind, self.target, self.message = kind, target.format(**details), message.format(**details)


class BadRequest(Exception):
    """A request the HTTP layer refuses before the API sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Faults:
    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    reset_rate: float = 0.0
    drop_rate: float = 0.0
    key_delay: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    functions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Faults:
        latency = data.get("latency", 0.0)
        if not isinstance(latency, (list, tuple)):
            latency = (latency, latency)
        return cls(
            latency=(float(latency[0]), float(latency[1])),
            error_rate=float(data.get("error_rate", 0.0)),
            reset_rate=float(data.get("reset_rate", 0.0)),
            drop_rate=float(data.get("drop_rate", 0.0)),
            key_delay=float(data.get("key_delay", 0.0)),
            rate_limit_rate=float(data.get("rate_limit_rate", 0.0)),
            retry_after=int(data.get("retry_after", 1)),
            functions=tuple(data.get("functions") or ()),
        )

    def applies_to(self, func: str) -> bool:
        return not self.functions or func in self.functions


# -- the reply document, and its four renderings --------------------------------------------------


@dataclass
class Document:
    """One reply, before it is rendered in the format the client asked for."""

    values: dict[str, str | None] = field(default_factory=dict)  # top-level values; None: an empty element
    record: dict[str, str] | None = None  # one object (soft.edit): XML/json at the top of doc, bjson `model`
    elems: list[dict[str, str]] | None = None  # a list (soft, subaccount): `elem[*]`
    nested: dict[str, str] | None = None  # service.prolong: a doc inside the doc
    error: ApiError | None = None


def render(document: Document, output: str) -> tuple[str, bytes]:
    """(content type, body) of `document` as `out=` asks: xml (the default), json, bjson or text."""
    if output == "json":
        return "application/json", json.dumps({"doc": _json_doc(document)}, ensure_ascii=False).encode()
    if output == "bjson":
        return "application/json", json.dumps(_bjson_doc(document), ensure_ascii=False).encode()
    if output == "text":
        return "text/plain; charset=utf-8", _text_doc(document).encode()
    return "text/xml; charset=utf-8", _xml_doc(document)


def _xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot carry replaced: any stored value gives well-formed XML."""
    return _NOT_XML.sub("\ufffd", text)


def _xml_doc(document: Document) -> bytes:
    root = ET.Element("doc")

    def add(parent: ET.Element, key: str, value: str | None) -> None:
        ET.SubElement(parent, key).text = None if value is None else _xml_safe(value)

    if document.error is not None:
        error = ET.SubElement(root, "error", type=document.error.kind, object=_xml_safe(document.error.target))
        add(error, "msg", document.error.message)
    for key, value in document.values.items():
        add(root, key, value)
    for key, value in (document.record or {}).items():
        add(root, key, value)
    for elem in document.elems or ():
        element = ET.SubElement(root, "elem")
        for key, value in elem.items():
            add(element, key, value)
    if document.nested is not None:
        inner = ET.SubElement(root, "doc")
        for key, value in document.nested.items():
            add(inner, key, value)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _json_doc(document: Document) -> dict:
    """The XML mapped to JSON as BILLmanager does it: text as "$", attributes as "$name"."""

    def text(value: str | None) -> dict:
        return {} if value is None else {"$": value}

    doc: dict[str, Any] = {}
    if document.error is not None:
        error = document.error
        doc["error"] = {"$type": error.kind, "$object": error.target, "msg": text(error.message)}
    doc.update({key: text(value) for key, value in document.values.items()})
    doc.update({key: text(value) for key, value in (document.record or {}).items()})
    if document.elems is not None:
        doc["elem"] = [{key: text(value) for key, value in elem.items()} for elem in document.elems]
    if document.nested is not None:
        doc["doc"] = {key: text(value) for key, value in document.nested.items()}
    return doc


def _bjson_doc(document: Document) -> dict:
    """bjson: doc unwrapped; top-level values as {"v": text} (the order id at id.v), the record under
    `model`, list items under `elem`, the error message at error.msg.$ (as Upmind reads them)."""
    if document.error is not None:
        error = document.error
        return {"error": {"type": error.kind, "object": error.target, "msg": {"$": error.message}}}
    doc: dict[str, Any] = {key: {} if value is None else {"v": value} for key, value in document.values.items()}
    if document.record is not None:
        doc["model"] = dict(document.record)
    if document.elems is not None:
        doc["elem"] = [dict(elem) for elem in document.elems]
    if document.nested is not None:
        doc["doc"] = dict(document.nested)
    return doc


def _text_doc(document: Document) -> str:
    def line(value: str) -> str:
        return value.replace("\r", "\\r").replace("\n", "\\n")

    if document.error is not None:
        error = document.error
        return f"ERROR {error.kind}({line(error.target)}): {line(error.message)}\n"
    lines = [key if value is None else f"{key}={line(value)}" for key, value in document.values.items()]
    lines += [f"{key}={line(value)}" for key, value in (document.record or {}).items()]
    lines += [" ".join(f"{key}={line(value)}" for key, value in elem.items()) for elem in document.elems or ()]
    lines += [f"{key}={line(value)}" for key, value in (document.nested or {}).items()]
    return "".join(f"{text}\n" for text in lines)


# -- state -----------------------------------------------------------------------------------------


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
            row = self.db.execute("SELECT 1 FROM licenses WHERE account=? AND ip=? AND status != ?",
                                  (account, ip, STATUS_DELETED)).fetchone()
        return row is not None

    def order(self, account: str, pricelist: str, period: int, ip: str, licname: str, remoteid: str,
              key_delay: float) -> int:
        with self._charged(account, _price(pricelist, period)):
            today = date.today()
            cursor = self.db.execute(
                "INSERT INTO licenses (account, pricelist, period, ip, licname, remoteid, status, lickey,"
                " key_ready_at, createdate, expiredate) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)",
                (account, pricelist, period, ip, licname, remoteid, STATUS_ORDERED, time.time() + key_delay,
                 today.isoformat(), _expiry(today, period).isoformat()),
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
        with self._charged(account, _price(lic["pricelist"], period)):
            expire = _expiry(max(date.fromisoformat(lic["expiredate"]), date.today()), period).isoformat()
            status = STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"]
            self.db.execute("UPDATE licenses SET expiredate=?, status=? WHERE id=?", (expire, status, lic["id"]))
            return expire

    def find_for_fetch(self, key: str, ip: str) -> dict | None:
        with self.lock:
            if key:
                row = self.db.execute("SELECT * FROM licenses WHERE lickey=? AND status IN (1, 2, 5)", (key,)).fetchone()
            else:
                row = self.db.execute(
                    "SELECT * FROM licenses WHERE ip=? AND status IN (1, 2, 5) ORDER BY id LIMIT 1", (ip,)).fetchone()
        return dict(row) if row else None


def _cents(euros: Any) -> int:
    return round(float(euros) * 100)


def _price(pricelist: str, period: int) -> int:
    """In cents: a year costs ten months (invented, as are the prices); a trial nothing."""
    return PRICELISTS[pricelist][1] * (10 if period == 12 else max(period, 0))


def _expiry(start: date, period: int) -> date:
    return start + timedelta(days=30 * max(period, 0) if period != 12 else 365)


# -- the API ---------------------------------------------------------------------------------------


class OrderGate:
    """Holds confirmed orders past the first N until released: a test can stop the agent between two
    orders, knowing which, instead of guessing with sleeps. Held orders are refused unprocessed
    (connection reset) when the gate is released with `drop=True`."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._limit: int | None = None
        self._dropping = False
        self.passed = 0
        self.held = threading.Event()  # set once an order waits at the gate

    def hold_after(self, orders: int) -> None:
        with self._changed:
            self._limit, self._dropping, self.passed = orders, False, 0
            self.held.clear()

    def release(self, drop: bool = False) -> None:
        with self._changed:
            self._limit, self._dropping = None, drop
            self._changed.notify_all()

    def admin(self, request: dict) -> dict:
        """`/admin/order-gate`: {"hold_after": N} holds, {"release": true, "drop": false} lets go, {}
        only reads; the answer is the gate's state, for a lab run driven from another process."""
        if "hold_after" in request:
            self.hold_after(int(request["hold_after"]))
        elif request.get("release"):
            self.release(drop=bool(request.get("drop", False)))
        with self._changed:
            return {"passed": self.passed, "held": self.held.is_set(), "holding": self._limit is not None}

    def enter(self, timeout: float = 120.0) -> bool:
        """Wait for the order's turn; False: refuse it unprocessed."""
        with self._changed:
            if self._limit is not None and self.passed >= self._limit:
                self.held.set()
                self._changed.wait_for(lambda: self._limit is None or self.passed < self._limit, timeout)
                if self._dropping:
                    return False
            self.passed += 1
            return True


class PartnerEmulator:
    """The emulator's state and server. `start()` serves on a thread (tests); `serve_forever()` blocks."""

    def __init__(self, state_dir: Path | str, listen: tuple[str, int] = ("127.0.0.1", 0),
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = AccountStore(self.state_dir / "partner.sqlite")
        self.password = self.store.ensure_account(LAB_USER)
        self.admin_token = _read_or_create(self.state_dir / "admin-token", secrets.token_hex(16))
        _write_private(self.state_dir / "credentials", f"{LAB_USER}:{self.password}\n")
        self.faults_path = self.state_dir / "faults.json"
        self._faults: Faults = Faults()
        self._faults_stamp: float | None = None
        self.calls: dict[str, int] = {}
        self.injected: dict[str, int] = {}  # faults injected, by kind: error, reset, drop
        self.refused: dict[int, int] = {}  # requests refused by the HTTP layer, by status
        self.calls_lock = threading.Lock()
        self.order_gate = OrderGate()
        self.server = _Server(listen, _handler_for(self, read_timeout))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/billmgr"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials"

    def start(self) -> PartnerEmulator:
        # stop() waits for the serving loop to notice, up to one poll interval: 0.5 s by default,
        # paid by every test that starts an emulator.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault settings (written to faults.json, so a running process sees them too)."""
        _write_private(self.faults_path, json.dumps(faults))

    def faults(self) -> Faults:
        try:
            stamp = self.faults_path.stat().st_mtime_ns
        except FileNotFoundError:
            return Faults()
        if stamp != self._faults_stamp:
            try:
                self._faults = Faults.from_json(json.loads(self.faults_path.read_text() or "{}"))
            except (ValueError, OSError):
                self._faults = Faults()
            self._faults_stamp = stamp
        return self._faults

    def count(self, table: dict, key: Any) -> None:
        with self.calls_lock:
            table[key] = table.get(key, 0) + 1

    def authenticate(self, params: dict[str, str]) -> str:
        user, _, password = params.get("authinfo", "").partition(":")
        account = self.store.account(user)
        if account is None or not secrets.compare_digest(account["password"].encode(), password.encode()):
            raise ApiError("auth")
        return user

    def handle(self, account: str, func: str, params: dict[str, str], faults: Faults) -> Document:
        """The reply of one API call."""
        if func == "soft.order.param":
            return self._order(account, params, faults)
        if func == "soft":
            return Document(elems=[self._fields(lic) for lic in self.store.licenses(account)
                                   if lic["status"] != STATUS_DELETED])
        if func == "subaccount":
            return self._subaccount(account, params)
        if func == "soft.checkip":
            _check_ip(params.get("ip", ""))
            if self.store.live_license_on(account, params["ip"]):
                raise ApiError("ip_taken")
            return Document(values={"ok": None})
        lic = self.store.license(account, params.get("elid", ""))
        if func == "soft.edit":
            return self._edit(lic, params)
        if func == "service.prolong":
            if not _confirmed(params):
                return Document(values={"elid": str(lic["id"]), "expiredate": lic["expiredate"]})
            return Document(nested={"newexpiredate": self.store.prolong(account, lic, _period(params))})
        if func == "service.changepricelist":
            if params.get("pricelist") not in PRICELISTS:
                raise ApiError("pricelist")
            self.store.update_license(lic["id"], pricelist=params["pricelist"], period=_period(params))
            return Document(values={"ok": None})
        if func == "soft.suspend":
            self.store.update_license(lic["id"], status=STATUS_SUSPENDED)
            return Document(values={"ok": None})
        if func == "soft.resume":
            if self.store.account(account)["unpaid"]:
                raise ApiError("unpaid")
            self.store.update_license(lic["id"], status=STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"])
            return Document(values={"ok": None})
        if func == "soft.delete":
            self.store.update_license(lic["id"], status=STATUS_DELETED, ip="0.0.0.0")
            return Document(values={"ok": None})
        raise ApiError("func")

    def _order(self, account: str, params: dict[str, str], faults: Faults) -> Document:
        if params.get("pricelist") not in PRICELISTS:
            raise ApiError("pricelist")
        period = _period(params)
        _check_ip(params.get("ip", ""))
        if not _confirmed(params):  # without sok the function only describes its form: nothing is ordered
            return Document(values={"pricelist": params["pricelist"], "period": str(period), "ip": params["ip"]})
        elid = str(self.store.order(account, params["pricelist"], period, params["ip"], params.get("licname", ""),
                                    params.get("remoteid", ""), faults.key_delay))
        # Each real client reads the id somewhere else: id (WHMCS, Upmind's id.v), item.id (JBS), elid.
        return Document(values={"id": elid, "item.id": elid, "elid": elid})

    def _subaccount(self, account: str, params: dict[str, str]) -> Document:
        project = params.get("project", "")
        if project and project.lower() != LAB_PROJECT.lower():
            return Document(elems=[])
        row = self.store.account(account)
        return Document(elems=[{"id": "1", "name": account, "project": LAB_PROJECT,
                                "balance": f"{row['balance_cents'] / 100:.2f}", "currency": "EUR"}])

    def _edit(self, lic: dict, params: dict[str, str]) -> Document:
        if _confirmed(params):
            if params.get("clicked_button") == "newkey":
                self.store.update_license(lic["id"], lickey=f"{lic['id']}-{secrets.token_hex(12)}")
            changes = {}
            if "ip" in params:
                _check_ip(params["ip"], allow_unassigned=True)
                changes["ip"] = params["ip"]
            for key in ("licname", "remoteid"):
                if key in params:
                    changes[key] = params[key]
            self.store.update_license(lic["id"], **changes)
            lic = self.store.license(lic["account"], str(lic["id"]))
        return Document(record={"elid": str(lic["id"]), **self._fields(lic)})

    def _fields(self, lic: dict) -> dict[str, str]:
        ready = time.time() >= lic["key_ready_at"]
        status = lic["status"] if ready or lic["status"] != STATUS_ORDERED else STATUS_PROCESSING
        return {
            "id": str(lic["id"]), "name": PRICELISTS[lic["pricelist"]][0], "licname": lic["licname"], "ip": lic["ip"],
            "remoteid": lic["remoteid"], "lickey": lic["lickey"] if ready else "", "status": str(status),
            "webdomains": "10", "createdate": lic["createdate"], "expiredate": lic["expiredate"],
            "pricelist": lic["pricelist"], "pricelist_name": PRICELISTS[lic["pricelist"]][0],
            "period": str(lic["period"]),
        }

    def fetch(self, key: str, source_ip: str) -> tuple[int, dict]:
        """`licctl fetch ispmgr [key]` from a lab host: by key, else by the caller's IP. The license
        is active from then on: a license binds when its server fetches it."""
        lic = self.store.find_for_fetch(key, source_ip)
        if lic is None:
            return 403, {"error": "Invalid activation key" if key else "You have no commercial license for this IP"}
        self.store.update_license(lic["id"], status=STATUS_ACTIVE)
        return 200, {"licid": str(lic["id"]), "panel_name": PRICELISTS[lic["pricelist"]][0],
                     "expire": lic["expiredate"], "ip": lic["ip"]}


def _confirmed(params: dict[str, str]) -> bool:
    return params.get("sok") in ("ok", "yes")


def _period(params: dict[str, str]) -> int:
    try:
        period = int(params.get("period", ""))
    except ValueError:
        raise ApiError("period") from None
    if period not in (1, 12, -100):
        raise ApiError("period")
    return period


def _check_ip(text: str, allow_unassigned: bool = False) -> None:
    try:
        address = IPv4Address(text)
    except ValueError:
        raise ApiError("ip") from None
    if address == IPv4Address("0.0.0.0") and not allow_unassigned:
        raise ApiError("ip")


def check_values(params: dict[str, str]) -> None:
    """Refuse a too long value or one with control characters, as the API refuses a bad value."""
    for name, value in params.items():
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        if len(value) > limit:
            raise ApiError("too_long", field=name[:64], limit=limit)
        if _CONTROL.search(value):
            raise ApiError("characters", field=name[:64])


# -- HTTP ------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 resets bursts of connections
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (a killed agent, its own timeout): nothing to report
        print(f"partner emulator: request from {client_address[0]} failed: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)


def _handler_for(emulator: PartnerEmulator, read_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    Handler.timeout = read_timeout
    return Handler


class _Handler(BaseHTTPRequestHandler):
    emulator: PartnerEmulator
    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections; HTTP/1.0 ones get one call each
    # Headers and body go out in two writes: without TCP_NODELAY a kept-alive connection waits for
    # the client's delayed ACK (40 ms) before the body leaves.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # query strings carry authinfo: log nothing
        pass

    def do_GET(self) -> None:
        self._serve(with_body=False)

    def do_POST(self) -> None:
        self._serve(with_body=True)

    def _serve(self, with_body: bool) -> None:
        try:
            body = self._read_body() if with_body else b""
            url = urlsplit(self.path)
            params = _params(url.query, body, self.headers.get("Content-Type", ""))
        except BadRequest as refused:
            self.emulator.count(self.emulator.refused, refused.status)
            self.close_connection = True
            self._send(refused.status, "text/plain; charset=utf-8", f"{refused}\n".encode())
            return self._linger()
        except (TimeoutError, OSError):
            self.close_connection = True  # the client stopped sending: the thread is freed
            return
        try:
            self._dispatch(url.path, params, body)
        except Exception as error:  # a bug here must not cost the client its answer, nor the server a thread
            print(f"partner emulator: {self.command} {url.path}: {type(error).__name__}: {error}", file=sys.stderr,
                  flush=True)
            self.close_connection = True
            self._send(500, "text/plain; charset=utf-8", b"internal error\n")

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        if length is None:
            if self.request_version == "HTTP/1.0":  # the body ends with the connection
                body = self.rfile.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
                return body
            raise BadRequest(411, "Length Required: send Content-Length (or a chunked body)")
        if not length.strip().isdigit():
            raise BadRequest(400, f"Bad Request: Content-Length {length[:40]!r} is not a number")
        if int(length) > MAX_BODY:
            raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            raise BadRequest(400, "Bad Request: the body is shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(400, "Bad Request: malformed chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _dispatch(self, path: str, params: dict[str, str], body: bytes) -> None:
        if path in API_PATHS:
            self._api(params)
        elif path == "/licctl/fetch":
            status, reply = self.emulator.fetch(params.get("key", ""), self.client_address[0])
            self._send(status, "application/json", json.dumps(reply).encode())
        elif path.startswith("/admin/"):
            self._admin(path.removeprefix("/admin/"), params, body)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _api(self, params: dict[str, str]) -> None:
        emulator = self.emulator
        func = params.get("func", "")[:64]
        output = params.get("out", "xml")
        emulator.count(emulator.calls, func)
        faults = emulator.faults()
        if faults.applies_to(func):
            low, high = faults.latency
            if high > 0:
                time.sleep(random.uniform(low, high))
            if random.random() < faults.error_rate:
                emulator.count(emulator.injected, "error")
                return self._send(503, "text/html", b"<html><body>503 Service Temporarily Unavailable</body></html>")
            if random.random() < faults.reset_rate:
                emulator.count(emulator.injected, "reset")
                return self._reset()
            if random.random() < faults.rate_limit_rate:
                emulator.count(emulator.injected, "429")
                return self._send(429, "text/plain", b"Too Many Requests\n", {"Retry-After": str(faults.retry_after)})
        if func == "soft.order.param" and _confirmed(params) and not emulator.order_gate.enter():
            return self._reset()
        try:
            check_values(params)
            account = emulator.authenticate(params)
            document = emulator.handle(account, func, params, faults)
        except ApiError as error:
            document = Document(error=error)
        if faults.applies_to(func) and document.error is None and random.random() < faults.drop_rate:
            emulator.count(emulator.injected, f"drop {func}")
            return self._reset()  # committed, and the answer is lost
        self._send(200, *render(document, output))

    def _admin(self, op: str, params: dict[str, str], body: bytes) -> None:
        emulator = self.emulator
        if not secrets.compare_digest(self.headers.get("X-Admin-Token", "").encode(), emulator.admin_token.encode()):
            return self._send(403, "application/json", b'{"error": "admin token required"}')
        try:
            data = json.loads(body or b"{}") if self.command == "POST" else {}
        except ValueError:
            return self._send(400, "application/json", b'{"error": "the body is not JSON"}')
        if op == "faults":
            emulator.set_faults(**data)
            reply: Any = {"ok": True}
        elif op == "account":
            password = emulator.store.ensure_account(data["user"], data.get("password"), float(data.get("balance", 100000)))
            emulator.store.update_account(data["user"], **{k: data[k] for k in ("balance", "unpaid") if k in data})
            reply = {"user": data["user"], "password": password}
        elif op == "calls":
            with emulator.calls_lock:
                reply = {"calls": dict(emulator.calls), "injected": dict(emulator.injected),
                         "refused": {str(k): v for k, v in emulator.refused.items()}}
                if params.get("reset"):
                    emulator.calls.clear()
        elif op == "licenses":
            reply = [{k: v for k, v in lic.items() if k != "lickey"} for lic in emulator.store.licenses()]
        elif op == "order-gate":
            reply = emulator.order_gate.admin(data)
        else:
            return self._send(404, "application/json", b'{"error": "unknown admin operation"}')
        self._send(200, "application/json", json.dumps(reply).encode())

    def _send(self, status: int, content_type: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _linger(self, seconds: float = 2.0) -> None:
        """After refusing a request whose body was not read, let the client read the answer: stop
        writing, then read and drop what it still sends until it stops or `seconds` pass (what
        web servers call a lingering close). Closed with its bytes unread, the socket would reset
        the connection, and a client still sending 2 MB would get a broken pipe, not the 413."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _reset(self) -> None:
        """Close with RST: the client sees 'connection reset by peer' and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self.wfile = _Discard()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


def _params(query: str, body: bytes, content_type: str) -> dict[str, str]:
    """The call's parameters: the query string, then the body (multipart, or urlencoded with or
    without its Content-Type header); the body wins where both name a parameter."""
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS))
        if content_type.lower().startswith("multipart/form-data"):
            params.update(_multipart(body, content_type))
        elif body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError as error:
        raise BadRequest(400, f"Bad Request: {error}") from None
    return params


def _multipart(body: bytes, content_type: str) -> dict[str, str]:
    if "boundary=" not in content_type:
        raise BadRequest(400, "Bad Request: multipart/form-data without a boundary")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest(400, "Bad Request: unreadable multipart/form-data body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if len(fields) >= MAX_FIELDS:
            raise BadRequest(400, f"Bad Request: more than {MAX_FIELDS} fields")
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        fields[str(name)] = payload.decode(charset, "replace")
    return fields


class _Discard:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _read_or_create(path: Path, default: str) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        _write_private(path, default + "\n")
        return default


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ISPsystem partner-account (BILLmanager) API emulator")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--read-timeout", type=float, default=READ_TIMEOUT, metavar="SECONDS",
                        help=f"how long a connection may stay silent (default {READ_TIMEOUT:g})")
    options = parser.parse_args(argv)
    host, _, port = options.listen.rpartition(":")
    emulator = PartnerEmulator(options.state_dir, (host, int(port)), read_timeout=options.read_timeout)
    print(f"partner emulator on {emulator.url}, state in {options.state_dir}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
