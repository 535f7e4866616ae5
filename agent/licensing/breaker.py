"""The order breaker: after an account refuses an order for payment, hosts stop ordering from it.

Orders of one account also go out one at a time (`gate`), so the first refusal is seen before a
second order is sent: an unpaid account is asked once, not once per host.

- `LocalOrderBreaker`: one process's memory; what a run without a ledger to share uses.
- `LedgerOrderBreaker`: the tripped state is a row of the ledger, so every agent sharing the ledger
  (another cron job, another control node on the team's PostgreSQL) stops too. Once tripped, one
  order every PROBE_SECONDS is let through, across all agents, to see whether the invoice was paid;
  the first that succeeds clears the row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from agent.errors import PartnerPaymentRequired

if TYPE_CHECKING:
    from agent.ledger import LicenseLedger

BREAKER_SECONDS = 600.0  # a refusal stops ordering this long (unless a probe order goes through)
PROBE_SECONDS = 30.0  # while tripped, one order this often tries the account again


class OrderBreaker(Protocol):
    def gate(self, account: str) -> threading.Lock:
        """Held while one order of `account` is sent."""
        ...

    def check(self, account: str) -> None:
        """Raise PartnerPaymentRequired when `account` must not be asked for an order now."""
        ...

    def admit(self, account: str) -> None:
        """`check`, right before an order is sent under the gate: may take the one probe order."""
        ...

    def trip(self, account: str, message: str) -> None: ...

    def succeeded(self, account: str) -> None:
        """An order of `account` went through."""
        ...


class _Gates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}

    def gate(self, account: str) -> threading.Lock:
        with self._lock:
            return self._gates.setdefault(account, threading.Lock())


class LocalOrderBreaker(_Gates):
    """Per account, in this process: once tripped, no order until BREAKER_SECONDS pass."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self._tripped: dict[str, tuple[float, str]] = {}

    def check(self, account: str) -> None:
        with self._lock:
            tripped = self._tripped.get(account)
            if tripped and self.clock() - tripped[0] < BREAKER_SECONDS:
                raise PartnerPaymentRequired(f"ordering stopped for this run: {tripped[1]}")

    admit = check

    def trip(self, account: str, message: str) -> None:
        with self._lock:
            self._tripped[account] = (self.clock(), message)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._tripped.pop(account, None)


class LedgerOrderBreaker(_Gates):
    """Per account, for every agent on `ledger`: the tripped state is the ledger's `order_breakers` row."""

    def __init__(self, ledger: LicenseLedger, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.ledger = ledger
        self.clock = clock

    def check(self, account: str) -> None:
        self._decide(account, take_probe=False)

    def admit(self, account: str) -> None:
        self._decide(account, take_probe=True)

    def _decide(self, account: str, take_probe: bool) -> None:
        row = self.ledger.breaker(account)
        now = self.clock()
        if row is None or now - row.tripped_at >= BREAKER_SECONDS:
            return
        if now - row.probe_at >= PROBE_SECONDS and (not take_probe or self.ledger.take_probe(account, row, now)):
            return  # a probe is due (check), or this order is the probe (admit)
        since = _utc(row.tripped_at)
        retry = _utc(max(row.probe_at + PROBE_SECONDS, now))
        raise PartnerPaymentRequired(
            f"ordering stopped since {since} UTC: {row.message}; one order is tried again at {retry} UTC or later"
        )

    def trip(self, account: str, message: str) -> None:
        self.ledger.trip_breaker(account, message, self.clock())

    def succeeded(self, account: str) -> None:
        if self.ledger.breaker(account) is not None:
            self.ledger.clear_breaker(account)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S")
