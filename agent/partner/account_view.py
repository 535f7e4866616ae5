"""The partner account as one run sees it: listed once, kept current with the run's own writes.

Listing the account costs in proportion to its size (a partner holds thousands of licenses), and
every host of a run wants to know the few licenses on its own IP or remoteid. `AccountView` lists
the account once per run (the run's services hold one per account), indexes it by id, IP and
remoteid, and answers each host from memory. It lists again only when it must:

- after an uncertain write (no answer: the write may or may not have happened);
- when a caller needs a list made after a point it names (`listed_after`, a `ticket`);
- when the last list is older than `max_age` seconds.

The run's own writes keep it current without a list: the view watches the run's client
(`PartnerClient.watch`) and applies every order, move or rename, suspend, resume, renewal, tariff
change and deletion that the account confirmed, and every license record read (`soft.edit`). A
write that ends in a refusal changed nothing; one that provably never left changed nothing; one
that got no answer makes the view stale. A write confirmed while a list is in flight is applied
again once that list lands, since the list may predate it.

Exactly once, with a shared view
--------------------------------
Ordering (or taking a free license, which moves one that someone else may have taken) is decided
by agent/licensing/ensure.py under the server's ledger lock. The rule it follows: **before money
moves, the decision is made from a list whose request left after that lock was taken**
(`ticket()` right after the lock, `listed_after=` that ticket). Why that is enough, and why the
run's older list plus its own writes is not:

1. Every agent that shares the ledger orders for a server only under that server's lock, and holds
   it until the order's answer came back (or its outcome was looked up). So when we hold the lock,
   every such order for this server has finished, and a list sent after we took the lock shows it.
   Today's per-host list rests on exactly this; the shared view keeps it by listing again, not by
   reasoning from an older list.
2. An older list plus the run's own writes is *not* provably complete for this server: between
   that list and our lock, another agent on the ledger (another cron job, another control node on
   the team's PostgreSQL) may have taken the lock, ordered and let go. Our process cannot see that;
   the ledger could only prove it with a clock that orders its commits, which its timestamps
   (each agent's own clock) and PostgreSQL's sequences (handed out at insert, not at commit) are
   not. So no order is ever decided from the older list.
3. Lists for orders are shared where that is still sound: a list whose request left after host A
   took its lock serves A, and serves every other host whose lock was taken before it left.
   Hosts waiting for such a list share the next one (one in flight at a time), so a rollout
   of many new hosts costs a list per wave, not a list per host.
4. Deciding that nothing is to be bought ("existing", "adopted") from the older list moves no
   money. It is checked anyway: the step reads the license itself (`soft.edit`, which it does to
   fetch the key) and starts again from a fresh list if the license is gone or on another IP by
   then, so a stale view never hands a server another server's key.
5. After an uncertain order, every look for it is a list made after the outcome was lost (as
   before: the API has no idempotency keys, the remoteid and IP find it).

What no list can close, before or now: a person (or a tool that does not share the ledger) ordering
for the same IP between our list and our order. That window is the round trip of one list, as it
was with a list per host.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from agent.errors import PartnerCallNotSent, PartnerError, PartnerNotFound, PartnerTransient
from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus, license_from_fields
from agent.partner.operations import Operation

MAX_AGE = 120.0  # seconds a list serves; people change accounts too, and long runs last hours

Change = Callable[[], None]


class AccountView:
    """The account of `client`, listed once and kept current with this client's writes. Thread-safe."""

    def __init__(
        self, client: PartnerClient, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.lists = 0  # lists this view made
        self._clock = clock
        self._changed = threading.Condition()
        self._tickets = itertools.count(1)
        self._by_id: dict[str, AccountLicense] | None = None  # None: never listed
        self._by_ip: dict[str, set[str]] = {}
        self._by_remoteid: dict[str, set[str]] = {}
        self._free: set[str] = set()
        self._listed_ticket = 0  # the ticket of the list the view holds
        self._listed_at = 0.0
        self._valid_after = 0  # a list must be newer than this ticket (raised by uncertain writes)
        self._listing: int | None = None  # the ticket of the list in flight
        self._replay: list[Change] = []  # changes confirmed while that list is in flight
        client.watch(self._watch)

    # -- reads ---------------------------------------------------------------------------------

    def ticket(self) -> int:
        """A point in this process's order of events: a list with a later ticket was sent after it."""
        with self._changed:
            return next(self._tickets)

    def licenses(self, listed_after: int = 0) -> list[AccountLicense]:
        """Every license of the account (deleted ones included, as the account shows them)."""
        with self._current(listed_after) as by_id:
            return list(by_id.values())

    def near(
        self,
        ip: str,
        remoteid: str | None = None,
        ids: Iterable[str | None] = (),
        free: bool = False,
        listed_after: int = 0,
    ) -> list[AccountLicense]:
        """The licenses on `ip`, with `remoteid`, with one of `ids`, and (`free`) the parked ones:
        all that a host's plan looks at, so planning on them decides as on the whole account."""
        with self._current(listed_after) as by_id:
            chosen = set(self._by_ip.get(ip, ()))
            if remoteid:
                chosen |= self._by_remoteid.get(remoteid, set())
            chosen |= {i for i in ids if i and i in by_id}
            if free:
                chosen |= self._free
            return [by_id[i] for i in sorted(chosen)]

    def invalidate(self) -> None:
        """The next read lists the account again (a conflict seen, an outcome unknown)."""
        with self._changed:
            self._valid_after = next(self._tickets)

    @contextmanager
    def _current(self, listed_after: int) -> Iterator[dict[str, AccountLicense]]:
        """Hold the view's lock over a list newer than `listed_after` and not too old (listing if needed);
        yields the licenses by id."""
        with self._changed:
            while not self._fresh(listed_after):
                if self._listing is not None:
                    self._changed.wait()  # share the list in flight; if it is too old for us, list after it
                    continue
                self._list()
            assert self._by_id is not None  # a fresh view has been listed
            yield self._by_id

    def _fresh(self, listed_after: int) -> bool:
        return (
            self._by_id is not None
            and self._listed_ticket > max(listed_after, self._valid_after)
            and self._clock() - self._listed_at <= self.max_age
        )

    def _list(self) -> None:
        """One list, sent without the view's lock (other hosts keep reading); called with it held."""
        ticket, started = next(self._tickets), self._clock()
        self._listing, self._replay = ticket, []
        self._changed.release()
        try:
            found = self.client.list()
        except BaseException:
            self._changed.acquire()
            self._listing = None
            self._changed.notify_all()
            raise
        self._changed.acquire()
        self.lists += 1
        self._index(found)
        for change in self._replay:
            change()
        self._listing, self._replay = None, []
        self._listed_ticket, self._listed_at = ticket, started
        self._changed.notify_all()

    # -- the index -----------------------------------------------------------------------------

    def _index(self, found: list[AccountLicense]) -> None:
        self._by_id, self._by_ip, self._by_remoteid, self._free = {}, {}, {}, set()
        for lic in found:
            self._put(lic)

    def _put(self, lic: AccountLicense) -> None:
        if self._by_id is None:
            return
        self._drop(lic.id)
        self._by_id[lic.id] = lic
        self._by_ip.setdefault(lic.ip, set()).add(lic.id)
        if lic.remoteid:
            self._by_remoteid.setdefault(lic.remoteid, set()).add(lic.id)
        if lic.free:
            self._free.add(lic.id)

    def _drop(self, license_id: str) -> None:
        old = self._by_id.pop(license_id, None) if self._by_id is not None else None
        if old is None:
            return
        self._by_ip.get(old.ip, set()).discard(license_id)
        self._by_remoteid.get(old.remoteid, set()).discard(license_id)
        self._free.discard(license_id)

    def _edit(self, license_id: str, **fields: Any) -> None:
        """Change fields of a license the view holds; one it does not hold makes the view stale."""
        if self._by_id is None:
            return
        old = self._by_id.get(license_id)
        if old is None:  # written by us, so it exists, but we do not know the rest of it
            self._valid_after = next(self._tickets)
            return
        self._put(replace(old, **fields))

    def _resumed(self, license_id: str) -> None:
        lic = self._by_id.get(license_id) if self._by_id is not None else None
        if lic is not None and lic.status == LicenseStatus.SUSPENDED:
            self._put(replace(lic, status=LicenseStatus.ACTIVE))

    # -- the run's writes ----------------------------------------------------------------------

    def _watch(self, operation: Operation, params: dict[str, Any], result: Any, error: PartnerError | None) -> None:
        """The client's watcher: apply what a call proved about the account."""
        if operation.name == "list":
            return  # lists are the view's own business: their timing is what makes them fresh
        change = self._change_for(operation, params, result, error)
        if change is None:
            return
        with self._changed:
            change()
            if self._listing is not None:
                self._replay.append(change)

    def _change_for(
        self, operation: Operation, params: dict[str, Any], result: Any, error: PartnerError | None
    ) -> Change | None:
        elid = params.get("elid", "")
        if isinstance(error, PartnerNotFound) and elid:
            return lambda: self._drop(elid)
        if isinstance(error, PartnerTransient) and not isinstance(error, PartnerCallNotSent) and operation.writes:
            return self._stale
        if error is not None:
            return None  # refused, or never sent: the account is as it was
        return self._confirmed(operation, params, result)

    def _stale(self) -> None:
        self._valid_after = next(self._tickets)

    def _confirmed(self, operation: Operation, params: dict[str, Any], result: Any) -> Change | None:
        elid, editions = params.get("elid", ""), self.client.settings.editions_by_pricelist()
        name = operation.name
        if name == "get" or (name == "move" and isinstance(result, dict) and result.get("ip")):
            fields = {**result, "lickey": ""}  # keys are read per host, never served from the view
            return lambda: self._put(license_from_fields({"id": elid, **fields}, editions))
        if name == "order":
            ordered = AccountLicense(
                str(result),
                params["ip"],
                params.get("licname", ""),
                LicenseStatus.ORDERED,
                params["pricelist"],
                editions.get(params["pricelist"]),
                "",
                params.get("remoteid", ""),
            )
            return lambda: self._put(ordered)
        if name == "move":
            moved = {key: params[key] for key in ("ip", "licname", "remoteid") if key in params}
            return lambda: self._edit(elid, **moved)
        if name == "suspend":
            return lambda: self._edit(elid, status=LicenseStatus.SUSPENDED)
        if name == "resume":
            return lambda: self._resumed(elid)
        if name == "delete":
            return lambda: self._drop(elid)
        if name == "renew" and result:
            return lambda: self._edit(elid, expiredate=str(result))
        if name == "change_tariff":
            return lambda: self._edit(elid, pricelist=params["pricelist"], edition=editions.get(params["pricelist"]))
        return None  # reads that say nothing of a license, new keys (the view holds none)
