"""The partner account emulator: ISPsystem's BILLmanager license API, as real clients see it.

A real HTTP server (`python -m agent.lab.partner_emulator --listen HOST:PORT --state-dir DIR`,
started by `ispagent lab up`) speaking the calls, parameters and reply shapes of
shared/ispmanager-facts.md §4/§8: `soft.order.param`, `soft.edit` (read, change IP/name, new key),
`soft` (list), `service.prolong`, `service.changepricelist`, `soft.suspend|resume|delete`,
`soft.checkip`, `subaccount`; `out=bjson|json|xml`; errors with HTTP 200 in the body. It also answers
the lab hosts' `licctl fetch` at `/licctl/fetch`.

State is SQLite (DIR/partner.sqlite): accounts with balances and an "unpaid invoice" switch,
licenses. On start it writes DIR/credentials (0600, "user:password" of the lab's account) and
DIR/admin-token (0600). Faults are read from DIR/faults.json on every call (tests may rewrite it) or
set through `POST /admin/faults`:

    {"latency": [0.0, 0.05],   # seconds before handling, uniform in [min, max]
     "error_rate": 0.3,        # HTTP 503 before anything happens
     "reset_rate": 0.1,        # connection reset before anything happens
     "drop_rate": 0.1,         # commit-then-drop: the call is done, the answer never arrives
     "key_delay": 0.2,         # seconds before an ordered license gets its activation key
     "functions": ["soft.order.param"]}   # faults only for these functions (default: all)

What is not public and so invented here (and kept in one place, `_ERRORS`): the unpaid/insufficient
funds error's type and wording, prices, and the status an order has before its key exists (5).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import sqlite3
import struct
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

LAB_USER = "lab-partner@example.com"
PRICELISTS = {  # id -> (panel name, monthly price EUR); prices invented (facts §4.5: unconfirmed)
    "55227": ("ISPmanager Lite", 8.0),
    "55228": ("ISPmanager Pro", 14.0),
    "55229": ("ISPmanager Host", 28.0),
    "55230": ("ISPmanager Business", 60.0),
    "55239": ("ISPmanager Trial", 0.0),
}
FIRST_LICENSE_ID = 3100000
STATUS_ORDERED, STATUS_ACTIVE, STATUS_SUSPENDED, STATUS_DELETED, STATUS_PROCESSING = 1, 2, 3, 4, 5

_ERRORS = {
    "auth": ("auth", "", "Invalid username or password"),
    "unpaid": ("payment", "", "Ordering is blocked: the account has an unpaid invoice"),
    "funds": ("payment", "", "Insufficient funds on the account balance"),
    "missed": ("missed", "elid", "Object not found"),
    "ip": ("value", "ip", "Invalid IP address"),
    "pricelist": ("value", "pricelist", "Unknown tariff"),
    "period": ("value", "period", "Invalid period"),
    "func": ("missed", "func", "Unknown function"),
}


class ApiError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.kind, self.target, self.message = _ERRORS[name]


@dataclass(frozen=True)
class Faults:
    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    reset_rate: float = 0.0
    drop_rate: float = 0.0
    key_delay: float = 0.0
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
            functions=tuple(data.get("functions") or ()),
        )

    def applies_to(self, func: str) -> bool:
        return not self.functions or func in self.functions


class AccountStore:
    """Accounts and licenses in SQLite. One connection, one lock: correctness over speed."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS accounts (
                user TEXT PRIMARY KEY, password TEXT NOT NULL, balance REAL NOT NULL, unpaid INTEGER NOT NULL DEFAULT 0);
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
            row = self.db.execute("SELECT password FROM accounts WHERE user=?", (user,)).fetchone()
            if row:
                return row["password"]
            password = password or secrets.token_urlsafe(18)
            self.db.execute("INSERT INTO accounts VALUES (?, ?, ?, 0)", (user, password, balance))
            return password

    def update_account(self, user: str, **changes: Any) -> None:
        with self.lock:
            for column in ("password", "balance", "unpaid"):
                if column in changes:
                    self.db.execute(f"UPDATE accounts SET {column}=? WHERE user=?", (changes[column], user))

    def account(self, user: str) -> sqlite3.Row | None:
        with self.lock:
            return self.db.execute("SELECT * FROM accounts WHERE user=?", (user,)).fetchone()

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

    def order(self, account: str, pricelist: str, period: int, ip: str, licname: str, remoteid: str,
              key_delay: float) -> int:
        with self.lock:
            user = self.db.execute("SELECT * FROM accounts WHERE user=?", (account,)).fetchone()
            price = PRICELISTS[pricelist][1] * (10 if period == 12 else max(period, 0))
            if user["unpaid"]:
                raise ApiError("unpaid")
            if user["balance"] < price:
                raise ApiError("funds")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("UPDATE accounts SET balance=balance-? WHERE user=?", (price, account))
                today = date.today()
                cursor = self.db.execute(
                    "INSERT INTO licenses (account, pricelist, period, ip, licname, remoteid, status, lickey,"
                    " key_ready_at, createdate, expiredate) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)",
                    (account, pricelist, period, ip, licname, remoteid, STATUS_ORDERED, time.time() + key_delay,
                     today.isoformat(), _expiry(today, period).isoformat()),
                )
                elid = cursor.lastrowid
                self.db.execute("UPDATE licenses SET lickey=? WHERE id=?", (f"{elid}-{secrets.token_hex(12)}", elid))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return elid

    def update_license(self, elid: int, **changes: Any) -> None:
        with self.lock:
            for column, value in changes.items():
                self.db.execute(f"UPDATE licenses SET {column}=? WHERE id=?", (value, elid))

    def prolong(self, account: str, lic: dict, period: int) -> str:
        with self.lock:
            user = self.account(account)
            price = PRICELISTS[lic["pricelist"]][1] * (10 if period == 12 else period)
            if user["unpaid"]:
                raise ApiError("unpaid")
            if user["balance"] < price:
                raise ApiError("funds")
            expire = _expiry(max(date.fromisoformat(lic["expiredate"]), date.today()), period).isoformat()
            self.db.execute("UPDATE accounts SET balance=balance-? WHERE user=?", (price, account))
            self.update_license(lic["id"], expiredate=expire, status=STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"])
            return expire

    def find_for_fetch(self, key: str, ip: str) -> dict | None:
        with self.lock:
            if key:
                row = self.db.execute("SELECT * FROM licenses WHERE lickey=? AND status IN (1, 2, 5)", (key,)).fetchone()
            else:
                row = self.db.execute(
                    "SELECT * FROM licenses WHERE ip=? AND status IN (1, 2, 5) ORDER BY id LIMIT 1", (ip,)).fetchone()
        return dict(row) if row else None


def _expiry(start: date, period: int) -> date:
    return start + timedelta(days=30 * max(period, 0) if period != 12 else 365)


class PartnerEmulator:
    """The emulator's state and server. `start()` serves on a thread (tests); `serve_forever()` blocks."""

    def __init__(self, state_dir: Path | str, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
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
        self.calls_lock = threading.Lock()
        self.server = _Server(listen, _handler_for(self))
        self.server.daemon_threads = True
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

    def count(self, func: str) -> None:
        with self.calls_lock:
            self.calls[func] = self.calls.get(func, 0) + 1

    def inject(self, kind: str) -> None:
        with self.calls_lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    # -- the API ---------------------------------------------------------------------------

    def authenticate(self, params: dict[str, str]) -> str:
        user, _, password = params.get("authinfo", "").partition(":")
        account = self.store.account(user)
        if account is None or not secrets.compare_digest(account["password"], password):
            raise ApiError("auth")
        return user

    def handle(self, account: str, func: str, params: dict[str, str], faults: Faults) -> dict:
        """The reply document (plain values) of one API call."""
        if func == "soft.order.param":
            return self._order(account, params, faults)
        if func == "soft":
            return {"elem": [self._fields(lic) for lic in self.store.licenses(account) if lic["status"] != STATUS_DELETED]}
        if func == "subaccount":
            return {"elem": [{"balance": f"{self.store.account(account)['balance']:.2f}", "currency": "EUR"}]}
        if func == "soft.checkip":
            _check_ip(params.get("ip", ""))
            return {"ok": ""}
        lic = self.store.license(account, params.get("elid", ""))
        if func == "soft.edit":
            return self._edit(lic, params)
        if func == "service.prolong":
            return {"doc": {"newexpiredate": self.store.prolong(account, lic, _period(params))}}
        if func == "service.changepricelist":
            if params.get("pricelist") not in PRICELISTS:
                raise ApiError("pricelist")
            self.store.update_license(lic["id"], pricelist=params["pricelist"], period=_period(params))
            return {"ok": ""}
        if func == "soft.suspend":
            self.store.update_license(lic["id"], status=STATUS_SUSPENDED)
            return {"ok": ""}
        if func == "soft.resume":
            if self.store.account(account)["unpaid"]:
                raise ApiError("unpaid")
            self.store.update_license(lic["id"], status=STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"])
            return {"ok": ""}
        if func == "soft.delete":
            self.store.update_license(lic["id"], status=STATUS_DELETED, ip="0.0.0.0")
            return {"ok": ""}
        raise ApiError("func")

    def _order(self, account: str, params: dict[str, str], faults: Faults) -> dict:
        if params.get("pricelist") not in PRICELISTS:
            raise ApiError("pricelist")
        _check_ip(params.get("ip", ""))
        elid = self.store.order(account, params["pricelist"], _period(params), params["ip"],
                                params.get("licname", ""), params.get("remoteid", ""), faults.key_delay)
        return {"id": str(elid)}

    def _edit(self, lic: dict, params: dict[str, str]) -> dict:
        if params.get("sok") in ("ok", "yes"):
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
        return {"model": self._fields(lic)}

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
        """`licctl fetch ispmgr [key]` from a lab host: by key, else by the caller's IP."""
        lic = self.store.find_for_fetch(key, source_ip)
        if lic is None:
            return 403, {"error": "Invalid activation key" if key else "You have no commercial license for this IP"}
        self.store.update_license(lic["id"], status=STATUS_ACTIVE)
        return 200, {"licid": str(lic["id"]), "panel_name": PRICELISTS[lic["pricelist"]][0],
                     "expire": lic["expiredate"], "ip": lic["ip"]}


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


# -- HTTP ------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (a killed agent, its own timeout): nothing to report
        super().handle_error(request, client_address)


def _handler_for(emulator: PartnerEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    return Handler


class _Handler(BaseHTTPRequestHandler):
    emulator: PartnerEmulator
    protocol_version = "HTTP/1.0"  # one call per connection, no chunking (like the JBS client)

    def log_message(self, format: str, *args: Any) -> None:  # query strings carry authinfo: log nothing
        pass

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length) if length else b"")

    def _dispatch(self, body: bytes) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if url.path in ("/billmgr", "/manager/billmgr"):
            self._api(params)
        elif url.path == "/licctl/fetch":
            status, reply = self.emulator.fetch(params.get("key", ""), self.client_address[0])
            self._send(status, "application/json", json.dumps(reply).encode())
        elif url.path.startswith("/admin/"):
            self._admin(url.path.removeprefix("/admin/"), params, body)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _api(self, params: dict[str, str]) -> None:
        emulator = self.emulator
        func = params.get("func", "")
        output = params.get("out", "xml")
        emulator.count(func)
        faults = emulator.faults()
        if faults.applies_to(func):
            low, high = faults.latency
            if high > 0:
                time.sleep(random.uniform(low, high))
            if random.random() < faults.error_rate:
                emulator.inject("error")
                return self._send(503, "text/html", b"<html><body>503 Service Temporarily Unavailable</body></html>")
            if random.random() < faults.reset_rate:
                emulator.inject("reset")
                return self._reset()
        try:
            account = emulator.authenticate(params)
            document = emulator.handle(account, func, params, faults)
        except ApiError as error:
            document = {"error": {"type": error.kind, "object": error.target, "msg": error.message}}
        if faults.applies_to(func) and "error" not in document and random.random() < faults.drop_rate:
            emulator.inject(f"drop {func}")
            return self._reset()  # committed, and the answer is lost
        self._send(200, *_render(document, output))

    def _admin(self, op: str, params: dict[str, str], body: bytes) -> None:
        emulator = self.emulator
        if not secrets.compare_digest(self.headers.get("X-Admin-Token", ""), emulator.admin_token):
            return self._send(403, "application/json", b'{"error": "admin token required"}')
        data = json.loads(body or b"{}") if self.command == "POST" else {}
        if op == "faults":
            emulator.set_faults(**data)
            reply: Any = {"ok": True}
        elif op == "account":
            password = emulator.store.ensure_account(data["user"], data.get("password"), float(data.get("balance", 100000)))
            emulator.store.update_account(data["user"], **{k: data[k] for k in ("balance", "unpaid") if k in data})
            reply = {"user": data["user"], "password": password}
        elif op == "calls":
            with emulator.calls_lock:
                reply = {"calls": dict(emulator.calls), "injected": dict(emulator.injected)}
                if params.get("reset"):
                    emulator.calls.clear()
        elif op == "licenses":
            reply = [{k: v for k, v in lic.items() if k != "lickey"} for lic in emulator.store.licenses()]
        else:
            return self._send(404, "application/json", b'{"error": "unknown admin operation"}')
        self._send(200, "application/json", json.dumps(reply).encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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


class _Discard:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _render(document: dict, output: str) -> tuple[str, bytes]:
    if output == "xml":
        return "text/xml", _to_xml(document)
    if output == "json":  # the front end's shape: wrapped in doc, values as {"$": text}
        return "application/json", json.dumps({"doc": _dollars(document)}).encode()
    # bjson: doc unwrapped; the order id at id.v, error message at error.msg.$ (facts §4.4)
    if "id" in document and isinstance(document["id"], str):
        document = {**document, "id": {"v": document["id"]}}
    if "error" in document:
        error = document["error"]
        document = {"error": {"type": error["type"], "object": error["object"], "msg": {"$": error["msg"]}}}
    return "application/json", json.dumps(document).encode()


def _dollars(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _dollars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dollars(item) for item in value]
    return {"$": value}


def _to_xml(document: dict) -> bytes:
    root = ET.Element("doc")
    for key, value in document.items():
        if key == "error":
            error = ET.SubElement(root, "error", type=value["type"], object=value["object"])
            ET.SubElement(error, "msg").text = value["msg"]
        elif key == "model":  # soft.edit: the record's fields at the top of doc
            _xml_fields(root, value)
        else:
            _xml_value(root, key, value)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _xml_value(parent: ET.Element, key: str, value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _xml_value(parent, key, item)
    elif isinstance(value, dict):
        _xml_fields(ET.SubElement(parent, key), value)
    else:
        ET.SubElement(parent, key).text = value


def _xml_fields(parent: ET.Element, fields: dict) -> None:
    for key, value in fields.items():
        _xml_value(parent, key, value)


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
    options = parser.parse_args(argv)
    host, _, port = options.listen.rpartition(":")
    emulator = PartnerEmulator(options.state_dir, (host, int(port)))
    print(f"partner emulator on {emulator.url}, state in {options.state_dir}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
