"""The order breaker: after an account refuses an order for payment, hosts stop ordering from it.

Orders of one account also go out one at a time (`gate`), so the first refusal is seen before a
second order is sent: an unpaid account is asked once, not once per host; and with the
`partner_order_interval` var, at least that many seconds apart (pacing).

- `LocalOrderBreaker`: one process's memory; what a run without a ledger to share uses.
- `LedgerOrderBreaker`: the tripped state is a row of the ledger, so every agent sharing the ledger
  (another cron job, another control node on the team's PostgreSQL) stops too. Once tripped, one
  order every PROBE_SECONDS is let through, across all agents, to see whether the invoice was paid;
  the first that succeeds clears the row. Its gate is also the ledger's: a lock per account
  (PostgreSQL: an advisory lock, gone with a dead agent's connection) and the account's
  `order_pacing` row, the database's time of the next order allowed, so several control nodes keep
  one pacing between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from agent.errors import PartnerPaymentRequired

if TYPE_CHECKING:
    from agent.ledger import LicenseLedger

BREAKER_SECONDS = 600.0  # a refusal stops ordering this long (unless a probe order goes through)
PROBE_SECONDS = 30.0  # while tripped, one order this often tries the account again
# Waiting for another agent's order of the same account: one order with its retries and 429 pauses
# takes under two minutes, so this is a queue of several nodes' orders, not a hung agent.
ACCOUNT_GATE_WAIT_SECONDS = 900.0


class OrderBreaker(Protocol):
    def gate(self, account: str, interval_s: float = 0.0) -> AbstractContextManager[None]:
        """Held while one order of `account` is sent; entered `interval_s` or more after the last one ended."""
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
    """One lock per account for this process's threads; pacing through `_wait` and `_sent`."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        self._sleep = sleep

    @contextmanager
    def gate(self, account: str, interval_s: float = 0.0) -> Iterator[None]:
        with self._lock:
            local = self._gates.setdefault(account, threading.Lock())
        with local, self._shared(account):
            while (pause := self._wait(account)) > 0:
                self._sleep(pause)
            try:
                yield
            finally:
                self._sent(account, interval_s)

    def _shared(self, account: str) -> AbstractContextManager[None]:
        return _NOTHING

    def _wait(self, account: str) -> float:
        return 0.0

    def _sent(self, account: str, interval_s: float) -> None:
        pass


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


class LocalOrderBreaker(_Gates):
    """Per account, in this process: once tripped, no order until BREAKER_SECONDS pass."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(sleep)
        self.clock = clock
        self._tripped: dict[str, tuple[float, str]] = {}
        self._next_at: dict[str, float] = {}

    def _wait(self, account: str) -> float:
        return max(0.0, self._next_at.get(account, 0.0) - self.clock())

    def _sent(self, account: str, interval_s: float) -> None:
        self._next_at[account] = self.clock() + interval_s

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

    def __init__(
        self, ledger: LicenseLedger, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(sleep)
        self.ledger = ledger
        self.clock = clock

    def _shared(self, account: str) -> AbstractContextManager[None]:
        return self.ledger.account_lock(account, ACCOUNT_GATE_WAIT_SECONDS)

    def _wait(self, account: str) -> float:
        return self.ledger.order_wait(account)

    def _sent(self, account: str, interval_s: float) -> None:
        self.ledger.order_sent(account, interval_s)

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
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")
