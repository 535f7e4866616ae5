"""Calls to the partner API: one method per function, typed errors, timeouts, retried reads.

HTTP is httpx: a connection pool per client (calls reuse connections), the timeout of the
settings, TLS verified against the system's trust store, proxies from the environment
(HTTPS_PROXY, NO_PROXY). The retry policy is tenacity's. Exactly once: a read is retried on any
failure that left no usable answer; a write only when its request provably never left (no
connection could be made). Whether a write that got no answer happened is for the caller to find
out before doing it again (agent/licensing/ensure.py looks for the license in the account).

Watchers (`watch`) see every call's outcome: the run's account view (account_view.py) keeps itself
current with the run's own writes that way, whoever makes them.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from agent.errors import PartnerCallNotSent, PartnerConfigError, PartnerError, PartnerTransient
from agent.gcpause import cycle_collection_paused
from agent.partner.model import AccountLicense, license_from_fields
from agent.partner.operations import Operation, ReplyShape, named
from agent.partner.replies import Reply, parse_reply, record, records, text_of
from agent.partner.settings import PERIOD_MONTHS, PartnerSettings
from agent.secrets import mask

READ_ATTEMPTS = 6  # reads are harmless to repeat
WRITE_ATTEMPTS = 3  # a write is repeated only when its connection could not be made
BACKOFF = wait_exponential(multiplier=0.1, max=1.5)  # 0.1, 0.2, 0.4, 0.8, 1.5 s between attempts
# Failures that happen before a byte of the request is written: no connection (refused, no route,
# name not found, connect timeout), no free connection in the pool, a proxy that refused the tunnel.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# HTTP 429 refuses a call before it is processed, so a write is repeated too, after its Retry-After
# (seconds; capped so a hostile or broken value cannot park a run for a day).
RETRY_AFTER_MAX = 30


class _RateLimited(PartnerCallNotSent):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(retry_state: RetryCallState) -> float:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, _RateLimited):
        return error.retry_after
    return BACKOFF(retry_state)


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (an HTTP date or garbage reads as the backoff's ceiling)."""
    try:
        seconds = float(value or "")
    except ValueError:
        return 1.5
    return min(max(seconds, 0.0), RETRY_AFTER_MAX) if seconds == seconds else 1.5


# A call's outcome as a watcher sees it: the operation, the API parameters sent, what the reply
# held (as `call` returns it) or the error that ended the call.
Watcher = Callable[[Operation, dict[str, Any], Any, "PartnerError | None"], None]


# As many connections kept alive as the pool may hold. httpcore (1.0.9) closes an idle connection
# once the pool holds more than max_keepalive_connections connections (20 by default), idle or busy,
# and may close one it has just handed to a request that has not started on it yet: that request
# then reads a closed socket (EBADF), an order sent and its answer lost (encode/httpcore#1110). Any
# run with more than 20 partner calls at once can meet it: 4 of 10 000 calls from 200 threads, 0 of
# 20 000 with these limits.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class PartnerClient:
    """The partner account of `settings`. Thread-safe; counts its calls by function in `calls`.

    `transport` replaces the network (tests); `close()` (or `with`) releases the pooled connections.
    """

    def __init__(
        self,
        settings: PartnerSettings,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.calls: Counter[str] = Counter()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._watchers: list[Watcher] = []
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout),
            limits=POOL_LIMITS,
            verify=ssl.create_default_context(),  # the system's CAs (and $SSL_CERT_FILE), name checked
            trust_env=True,
            transport=transport,
            headers={"User-Agent": "ispagent"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads (retried) -------------------------------------------------------------------

    def get(self, license_id: str) -> AccountLicense:
        """One license with its activation key (`soft.edit elid=`)."""
        fields = self.call(named("get"), elid=license_id)
        if not fields.get("id"):
            fields["id"] = license_id
        return license_from_fields(fields, self.settings.editions_by_pricelist())

    def list(self) -> list[AccountLicense]:
        """Every license of the account, without activation keys (`get` reads a license's key).

        A list's keys are dropped unread: nothing takes a key from a list, and registering each as a
        secret (what parsing a key does) made a 20 000-license list take minutes, and every masked
        line after it slower."""
        by_pricelist = self.settings.editions_by_pricelist()
        listed = self.call(named("list"))
        with cycle_collection_paused():  # as for its reply (_call): 20 000 licenses, no cycle
            return [license_from_fields({**fields, "lickey": ""}, by_pricelist) for fields in listed]

    # -- writes (not retried unless provably not sent) ---------------------------------------

    def order(self, edition: str, period: str, ip: str, licname: str, remoteid: str) -> str:
        """Order and pay for a license (skipbasket=on debits at once); returns its id."""
        license_id: str = self.call(
            named("order"),
            pricelist=self.settings.pricelist(edition),
            period=PERIOD_MONTHS[period],
            ip=ip,
            licname=licname,
            remoteid=remoteid,
        )
        return license_id

    def set_ip_and_name(
        self, license_id: str, ip: str | None = None, licname: str | None = None, remoteid: str | None = None
    ) -> None:
        """Move a license to another IP and/or rename it (`soft.edit ... sok=ok`)."""
        self.call(named("move"), elid=license_id, ip=ip, licname=licname, remoteid=remoteid)

    def new_key(self, license_id: str) -> str:
        """Issue a new activation key (the old one stops working); returns it."""
        found = license_from_fields(self.call(named("new_key"), elid=license_id), {})
        return found.key or ""

    def renew(self, license_id: str, period: str) -> str:
        """Prolong by `period` (monthly|annual); returns the new expiry date."""
        expires: str = self.call(named("renew"), elid=license_id, period=PERIOD_MONTHS[period])
        return expires

    def change_tariff(self, license_id: str, edition: str, period: str) -> None:
        self.call(
            named("change_tariff"),
            elid=license_id,
            pricelist=self.settings.pricelist(edition),
            period=PERIOD_MONTHS[period],
        )

    def suspend(self, license_id: str) -> None:
        self.call(named("suspend"), elid=license_id)

    def resume(self, license_id: str) -> None:
        self.call(named("resume"), elid=license_id)

    def delete(self, license_id: str) -> None:
        self.call(named("delete"), elid=license_id)

    # -- any operation of the table ------------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        """Tell `watcher` the outcome of every later call (on the calling thread, after the call)."""
        with self._lock:
            self._watchers = [*self._watchers, watcher]

    def call(self, operation: Operation, **values: str | int | None) -> Any:
        """One call of `operation` with `values` (API parameter names; None: not sent), read by its
        reply shape. Reads are retried on any failure that left no usable answer; writes only when
        the request provably never left."""
        params = operation.params(**values)
        try:
            if operation.writes:
                reply = self._retrying(operation.func, params, PartnerCallNotSent, WRITE_ATTEMPTS)
            else:
                reply = self._retrying(operation.func, params, PartnerTransient, READ_ATTEMPTS)
            result = _READERS[operation.reply](reply, operation.func)
        except PartnerError as error:
            self._tell(operation, params, None, error)
            raise
        self._tell(operation, params, result, None)
        return result

    def _tell(self, operation: Operation, params: dict[str, Any], result: Any, error: PartnerError | None) -> None:
        for watcher in self._watchers:  # replaced, never changed in place: no lock needed to read it
            watcher(operation, params, result, error)

    # -- transport -------------------------------------------------------------------------

    def _retrying(self, func: str, params: dict[str, Any], retry_on: type[Exception], attempts: int) -> Reply:
        policy = Retrying(
            retry=retry_if_exception_type(retry_on),
            stop=stop_after_attempt(attempts),
            wait=_wait,
            sleep=self._sleep,
            reraise=True,
        )
        return policy(self._call, func, params)

    def _call(self, func: str, params: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls[func] += 1
        fields = {
            "func": func,
            "out": self.settings.output,
            "lang": "en",
            "authinfo": f"{self.settings.user}:{self.settings.password}",
            **params,
        }
        response = self._post(func, fields)
        if response.status_code == 429:
            raise _RateLimited(
                f"{func}: the partner API answered HTTP 429 (rate limited)",
                _retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 500:
            raise PartnerTransient(f"{func}: the partner API answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise PartnerError(f"{func}: the partner API answered HTTP {response.status_code}")
        # A partner's list is 300 000 dicts, none in a cycle: full collections walking the whole
        # process while they are made cost a large account's run 0.2-0.3 s.
        with cycle_collection_paused():
            return parse_reply(response.content, self.settings.output, func)

    def _post(self, func: str, fields: dict[str, Any]) -> httpx.Response:
        where = self.settings.api_url
        try:
            return self._http.post(where, data=fields)
        except _NOT_SENT as error:
            if _certificate_refused(error):
                raise PartnerConfigError(
                    f"partner API {where}: TLS certificate not trusted: {_reason(error)}"
                ) from None
            raise PartnerCallNotSent(
                mask(f"{func}: cannot connect to the partner API at {where}: {_reason(error)}")
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise PartnerConfigError(f"partner API {where}: {error}") from None
        except httpx.HTTPError as error:
            # Sent, maybe processed: the caller must find out before doing it again.
            raise PartnerTransient(
                mask(f"{func}: no complete answer from the partner API ({_reason(error)})")
            ) from None


def _order_id(reply: Reply, func: str) -> str:
    # Where clients find the new id: id (WHMCS; id.v in bjson), item.id (JBS), elid.
    license_id = (
        text_of(reply, "id") or text_of(reply, "item.id") or text_of(reply, "item", "id") or text_of(reply, "elid")
    )
    if not license_id:
        raise PartnerTransient(f"{func}: the reply carries no license id")
    return license_id


_READERS: dict[ReplyShape, Callable[[Reply, str], Any]] = {
    ReplyShape.ORDER_ID: _order_id,
    ReplyShape.RECORD: lambda reply, func: record(reply),
    ReplyShape.RECORDS: lambda reply, func: records(reply),
    ReplyShape.NEW_EXPIRY: lambda reply, func: (
        text_of(reply, "doc", "newexpiredate") or text_of(reply, "newexpiredate")
    ),
    ReplyShape.DONE: lambda reply, func: None,
    ReplyShape.FORM: lambda reply, func: reply,
}


def _certificate_refused(error: BaseException) -> bool:
    """Whether the TLS handshake failed on the server's certificate (a setup problem, not a transient one)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
