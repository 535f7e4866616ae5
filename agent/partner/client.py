"""Calls to the partner API: one method per function, typed errors, timeouts, retried reads.

Writes are never retried here unless the connection was refused (the request provably never left):
whether a write that timed out happened is for the caller to find out (see agent/licensing/ensure.py).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from typing import Callable
from urllib.parse import urlencode, urlsplit

from agent.errors import PartnerCallNotSent, PartnerConfigError, PartnerError, PartnerTransient
from agent.partner.model import AccountLicense, license_from_fields
from agent.partner.replies import Reply, parse_reply, record, records, text_of
from agent.partner.settings import PERIOD_MONTHS, PartnerSettings
from agent.secrets import mask

# The list function is not documented anywhere public; JBS calls `soft` (facts §8). One place.
LIST_FUNCTION = "soft"
READ_ATTEMPTS = 6  # reads are harmless to repeat
READ_BACKOFF = (0.1, 0.2, 0.4, 0.8, 1.5)
CONNECT_ATTEMPTS = 3  # a write is repeated only when its connection was refused


class PartnerClient:
    """The partner account of `settings`. Thread-safe; counts its calls by function in `calls`."""

    def __init__(self, settings: PartnerSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.calls: Counter[str] = Counter()
        self._sleep = sleep
        self._lock = threading.Lock()
        parts = urlsplit(settings.api_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path or "/billmgr"
        self._tls = ssl.create_default_context() if self._https else None  # verifies certificate and name

    # -- reads (retried) -------------------------------------------------------------------

    def get(self, license_id: str) -> AccountLicense:
        """One license with its activation key (`soft.edit elid=`)."""
        reply = self._read("soft.edit", {"elid": license_id})
        fields = record(reply)
        fields.setdefault("id", license_id)
        if not fields.get("id"):
            fields["id"] = license_id
        return license_from_fields(fields, self.settings.editions_by_pricelist())

    def list(self) -> list[AccountLicense]:
        """Every license of the account."""
        reply = self._read(LIST_FUNCTION, {})
        by_pricelist = self.settings.editions_by_pricelist()
        return [license_from_fields(fields, by_pricelist) for fields in records(reply)]

    # -- writes (not retried unless provably not sent) ---------------------------------------

    def order(self, edition: str, period: str, ip: str, licname: str, remoteid: str) -> str:
        """Order and pay for a license (skipbasket=on debits at once); returns its id."""
        reply = self._write("soft.order.param", {
            "pricelist": self.settings.pricelist(edition),
            "period": PERIOD_MONTHS[period],
            "ip": ip,
            "licname": licname,
            "remoteid": remoteid,
            "skipbasket": "on",
            "clicked_button": "finish",
            "sok": "ok",
        })
        license_id = text_of(reply, "id") or text_of(reply, "item.id") or text_of(reply, "item", "id")
        if not license_id:
            raise PartnerTransient("soft.order.param: the reply carries no license id")
        return license_id

    def set_ip_and_name(self, license_id: str, ip: str | None = None, licname: str | None = None,
                        remoteid: str | None = None) -> None:
        """Move a license to another IP and/or rename it (`soft.edit ... sok=ok`)."""
        params = {"elid": license_id, "sok": "ok"}
        for key, value in (("ip", ip), ("licname", licname), ("remoteid", remoteid)):
            if value is not None:
                params[key] = value
        self._write("soft.edit", params)

    def new_key(self, license_id: str) -> str:
        """Issue a new activation key (the old one stops working); returns it."""
        reply = self._write("soft.edit", {"elid": license_id, "clicked_button": "newkey", "sok": "ok"})
        found = license_from_fields(record(reply), {})
        return found.key or ""

    def renew(self, license_id: str, period: str) -> str:
        """Prolong by `period` (monthly|annual); returns the new expiry date."""
        reply = self._write("service.prolong", {"elid": license_id, "period": PERIOD_MONTHS[period], "sok": "ok"})
        return text_of(reply, "doc", "newexpiredate") or text_of(reply, "newexpiredate")

    def change_tariff(self, license_id: str, edition: str, period: str) -> None:
        self._write("service.changepricelist", {
            "elid": license_id, "pricelist": self.settings.pricelist(edition), "period": PERIOD_MONTHS[period], "sok": "ok",
        })

    def suspend(self, license_id: str) -> None:
        self._write("soft.suspend", {"elid": license_id, "sok": "ok"})

    def resume(self, license_id: str) -> None:
        self._write("soft.resume", {"elid": license_id, "sok": "ok"})

    def delete(self, license_id: str) -> None:
        self._write("soft.delete", {"elid": license_id, "sok": "ok"})

    # -- transport -------------------------------------------------------------------------

    def _read(self, func: str, params: dict) -> Reply:
        """Reads change nothing: retried on any transient failure."""
        return self._retrying(func, params, PartnerTransient, READ_ATTEMPTS)

    def _write(self, func: str, params: dict) -> Reply:
        """Writes are retried only when the request provably never left (connection refused)."""
        return self._retrying(func, params, PartnerCallNotSent, CONNECT_ATTEMPTS)

    def _retrying(self, func: str, params: dict, retry_on: type[Exception], attempts: int) -> Reply:
        for attempt in range(attempts):
            try:
                return self._call(func, params)
            except retry_on:
                if attempt == attempts - 1:
                    raise
                self._sleep(READ_BACKOFF[min(attempt, len(READ_BACKOFF) - 1)])
        raise AssertionError("unreachable")

    def _call(self, func: str, params: dict) -> Reply:
        with self._lock:
            self.calls[func] += 1
        fields = {"func": func, "out": self.settings.output, "lang": "en",
                  "authinfo": f"{self.settings.user}:{self.settings.password}", **params}
        body = urlencode(fields).encode()
        status, data = self._post(func, body)
        if status >= 500:
            raise PartnerTransient(f"{func}: the partner API answered HTTP {status}")
        if status != 200:
            raise PartnerError(f"{func}: the partner API answered HTTP {status}")
        return parse_reply(data, self.settings.output, func)

    def _post(self, func: str, body: bytes) -> tuple[int, bytes]:
        timeout = self.settings.timeout
        if self._https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            try:
                connection.connect()
            except (ConnectionRefusedError, socket.gaierror) as error:
                raise PartnerCallNotSent(f"{func}: cannot connect to the partner API at {self._host}:{self._port}: {error}") from None
            except ssl.SSLCertVerificationError as error:
                raise PartnerConfigError(f"partner API {self._host}: TLS certificate not trusted: {error.verify_message}") from None
            except OSError as error:
                raise PartnerCallNotSent(f"{func}: cannot connect to the partner API at {self._host}:{self._port}: {error}") from None
            try:
                connection.request("POST", self._path, body, {"Content-Type": "application/x-www-form-urlencoded"})
                response = connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as error:
                # Sent, maybe processed: the caller must find out before doing it again.
                raise PartnerTransient(mask(f"{func}: no complete answer from the partner API ({type(error).__name__}: {error})")) from None
        finally:
            connection.close()
