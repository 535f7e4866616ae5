"""Getting a host its license, exactly once: adopt, reuse or order, through crashes and lost replies.

`plan_license` is the decision, a pure function of what the server, the ledger and the account say.
`ensure_license` carries it out under the host's ledger lock:

- the intent to order is written (fsynced) before the order is sent, the license id right after;
- after any uncertain outcome (timeout, reset, 5xx, crash) the account is searched by the host's
  remoteid and IP before another order is tried: the API has no idempotency keys;
- an order refused for payment trips a per-account circuit breaker: no other host of the run tries.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from agent.errors import (
    LicenseConflict,
    PartnerError,
    PartnerPaymentRequired,
    PartnerTransient,
)
from agent.ledger import LedgerHost, LicenseLedger
from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus
from agent.secrets import register_secret

ACTIONS = ("existing", "adopted", "reused", "ordered", "none")
ORDER_ATTEMPTS = 3  # orders sent for one host in one step, each only after a lookup found nothing
BREAKER_SECONDS = 600.0
PASSES = 4  # whole adopt-or-order passes per step when the account's answers get lost
PASS_BACKOFF = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class LicenseGrant:
    """The license a host gets; `key` (the activation key) is secret and registered as such."""

    id: str
    key: str | None = field(repr=False)
    edition: str
    period: str
    action: str

    def __post_init__(self) -> None:
        if self.key:
            register_secret(self.key)

    def report(self) -> dict[str, str]:
        return {"id": self.id, "edition": self.edition, "period": self.period, "action": self.action}


@dataclass(frozen=True)
class WantedLicense:
    host_name: str
    ip: str
    fqdn: str
    edition: str
    period: str


@dataclass(frozen=True)
class LicensePlan:
    action: str  # existing | adopted | reused | ordered
    license: AccountLicense | None
    reason: str
    stale_ledger_id: str | None = None  # the ledger's license for the host is gone from the account


def plan_license(
    wanted: WantedLicense,
    account: Sequence[AccountLicense],
    *,
    server_licid: str | None = None,
    ledger_license_id: str | None = None,
    remoteid: str | None = None,
    reuse_free: bool = False,
    taken: frozenset[str] = frozenset(),
) -> LicensePlan:
    """What to do for `wanted`, given the account's licenses. Raises LicenseConflict when unclear.

    `taken`: license ids the ledger gives to other hosts (never reused for this one).
    """
    by_id = {lic.id: lic for lic in account if lic.live}
    if server_licid and server_licid in by_id:
        return _checked(wanted, LicensePlan("existing", by_id[server_licid], f"the server runs license {server_licid}"))
    if server_licid and server_licid != "0":
        # The installed panel runs a license this account does not hold (bought elsewhere, or a
        # trial). The installer is not rerun on it, so a new order would be paid and never used.
        return LicensePlan(
            "none", None, f"the server runs license {server_licid}, which is not in this partner account: not ordering another"
        )
    stale = None
    if ledger_license_id:
        if ledger_license_id in by_id:
            return _checked(wanted, LicensePlan("existing", by_id[ledger_license_id], f"the ledger's license {ledger_license_id}"))
        stale = ledger_license_id
    mine = [lic for lic in by_id.values() if lic.ip == wanted.ip or (remoteid and lic.remoteid == remoteid)]
    if len(mine) > 1:
        ids = ", ".join(sorted(lic.id for lic in mine))
        raise LicenseConflict(
            f"{wanted.host_name}: the account holds {len(mine)} licenses for {wanted.ip} ({ids}); keep one "
            "(`ispagent licenses delete ID`), then rerun: ordering another would be paid twice"
        )
    if mine:
        return _checked(wanted, LicensePlan("adopted", mine[0], f"the account's license {mine[0].id} for this IP", stale))
    if reuse_free:
        free = sorted((lic for lic in by_id.values() if lic.free and lic.edition == wanted.edition and lic.id not in taken),
                      key=lambda lic: int(lic.id) if lic.id.isdigit() else 0)
        if free:
            return LicensePlan("reused", free[0], f"free {wanted.edition} license {free[0].id}", stale)
    return LicensePlan("ordered", None, f"new {wanted.edition} {wanted.period} license", stale)


def _checked(wanted: WantedLicense, plan: LicensePlan) -> LicensePlan:
    lic = plan.license
    assert lic is not None
    if lic.edition != wanted.edition:
        raise LicenseConflict(
            f"{wanted.host_name}: {plan.reason} is {lic.edition or 'tariff ' + lic.pricelist}, the inventory wants "
            f"{wanted.edition}: change the inventory, or the tariff (`ispagent licenses change-tariff {lic.id} {wanted.edition}`)"
        )
    if lic.ip != wanted.ip:
        raise LicenseConflict(
            f"{wanted.host_name}: {plan.reason} is for IP {lic.ip}, the server has {wanted.ip}: "
            f"move it with `ispagent licenses change-ip {lic.id} {wanted.ip}`"
        )
    return plan


class OrderBreaker:
    """Per account: once an order is refused for payment, no host orders until BREAKER_SECONDS pass.

    Orders of one account also go out one at a time, so the first refusal is seen before a second
    order is sent: an unpaid account is asked once, not once per host.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        self._tripped: dict[str, tuple[float, str]] = {}

    def gate(self, account: str) -> threading.Lock:
        with self._lock:
            return self._gates.setdefault(account, threading.Lock())

    def check(self, account: str) -> None:
        with self._lock:
            tripped = self._tripped.get(account)
            if tripped and time.monotonic() - tripped[0] < BREAKER_SECONDS:
                raise PartnerPaymentRequired(f"ordering stopped for this run: {tripped[1]}")

    def trip(self, account: str, message: str) -> None:
        with self._lock:
            self._tripped[account] = (time.monotonic(), message)

    def reset(self) -> None:
        with self._lock:
            self._tripped.clear()


BREAKER = OrderBreaker()


@dataclass
class LicenseWork:
    """What ensure_license needs: the account, the ledger, the host, and how to wait."""

    client: PartnerClient
    ledger: LicenseLedger
    wanted: WantedLicense
    address: str
    server_licid: str | None = None
    reuse_free: bool = False
    key_wait: float = 60.0
    settle: float = 3.0  # seconds to keep looking for an order whose answer was lost
    say: Callable[[str], None] = lambda line: None
    sleep: Callable[[float], None] = time.sleep
    breaker: OrderBreaker = BREAKER


def ensure_license(work: LicenseWork) -> LicenseGrant:
    """The host's license, adopted, reused or ordered; with its activation key.

    A pass that meets a lost or failed answer is started again from a fresh look at the account:
    every pass begins by finding what already exists, so repeating one never orders twice.
    """
    ordered: set[str] = set()  # a later pass finds what an earlier one ordered: still "ordered"
    for attempt in range(PASSES):
        try:
            grant = _ensure_once(work, ordered)
            if grant.id in ordered and grant.action == "existing":
                grant = LicenseGrant(grant.id, grant.key, grant.edition, grant.period, "ordered")
            return grant
        except PartnerTransient as error:
            if attempt == PASSES - 1:
                raise
            work.say(f"{error}; starting again from a fresh look at the account")
            work.sleep(PASS_BACKOFF[min(attempt, len(PASS_BACKOFF) - 1)])
    raise AssertionError("unreachable")


def _ensure_once(work: LicenseWork, ordered: set[str]) -> LicenseGrant:
    wanted, ledger = work.wanted, work.ledger
    host = ledger.host(wanted.host_name, work.address, wanted.fqdn)
    with ledger.host_lock(wanted.host_name):
        intent = ledger.order_intent(wanted.host_name)
        pending_order = intent is not None and intent.state == "ordering"
        plan = _plan(work, host)
        if plan.action == "none":
            work.say(plan.reason)
            return LicenseGrant(work.server_licid or "", None, wanted.edition, wanted.period, "none")
        if plan.stale_ledger_id:
            ledger.forget_license(plan.stale_ledger_id, "not in the partner account any more")
        if plan.action == "ordered":
            license_id = _order(work, host)
            ordered.add(license_id)
            action = "ordered"
        else:
            license_id = plan.license.id
            action = _take(work, host, plan, pending_order)
        key = _wait_for_key(work, license_id)
    return LicenseGrant(license_id, key, wanted.edition, wanted.period, action)


def _plan(work: LicenseWork, host: LedgerHost) -> LicensePlan:
    held = work.ledger.license_of_host(host.name)
    taken = frozenset(lic.id for lic in work.ledger.licenses() if lic.host_name not in (None, host.name))
    return plan_license(
        work.wanted, work.client.list(), server_licid=work.server_licid, ledger_license_id=held.id if held else None,
        remoteid=host.remoteid, reuse_free=work.reuse_free, taken=taken,
    )


def _take(work: LicenseWork, host: LedgerHost, plan: LicensePlan, pending_order: bool) -> str:
    """Adopt or reuse an existing license of the account; returns the action to report."""
    wanted, lic = work.wanted, plan.license
    if plan.action == "reused":
        if not work.ledger.claim_license(lic.id, host.name, wanted.ip, wanted.edition, wanted.period):
            raise PartnerTransient(f"{wanted.host_name}: free license {lic.id} was just taken by another host; rerun")
        work.say(f"reusing free license {lic.id}")
        work.client.set_ip_and_name(lic.id, ip=wanted.ip, licname=wanted.fqdn, remoteid=host.remoteid)
        work.client.resume(lic.id)
        return "reused"
    action = plan.action
    if pending_order and lic.remoteid == host.remoteid:
        action = "ordered"  # our own order whose reply was lost (or whose id we never wrote down)
        work.ledger.finish_order(host.name, lic.id, wanted.ip, wanted.edition, wanted.period)
    else:
        work.ledger.record_license(lic.id, host.name, wanted.ip, wanted.edition, wanted.period, action)
    if lic.status == LicenseStatus.SUSPENDED:
        work.say(f"resuming suspended license {lic.id}")
        work.client.resume(lic.id)
    return action


def _order(work: LicenseWork, host: LedgerHost) -> str:
    """Order once; after an uncertain outcome look the order up before sending another."""
    wanted, ledger = work.wanted, work.ledger
    account = work.client.settings.account
    for attempt in range(1, ORDER_ATTEMPTS + 1):
        work.breaker.check(account)
        ledger.begin_order(host, wanted.ip, wanted.edition, wanted.period)
        try:
            license_id = _send_order(work, host, attempt)
        except PartnerPaymentRequired as error:
            ledger.refuse_order(host.name, str(error))
            raise
        except PartnerTransient as error:
            work.say(f"order outcome unknown ({error}); looking it up")
            found = _look_up_order(work, host)
            if found:
                ledger.finish_order(host.name, found.id, wanted.ip, wanted.edition, wanted.period)
                return found.id
            continue
        except PartnerError as error:
            ledger.refuse_order(host.name, str(error))
            raise
        ledger.finish_order(host.name, license_id, wanted.ip, wanted.edition, wanted.period)
        return license_id
    raise PartnerTransient(
        f"{wanted.host_name}: {ORDER_ATTEMPTS} orders got no answer and none shows in the account; "
        "rerun (it looks the order up before trying again)"
    )


def _send_order(work: LicenseWork, host: LedgerHost, attempt: int) -> str:
    """One order, through the account's gate: a payment refusal trips the breaker before the next goes."""
    wanted, account = work.wanted, work.client.settings.account
    with work.breaker.gate(account):
        work.breaker.check(account)
        work.say(f"ordering a {wanted.edition} {wanted.period} license for {wanted.ip} (attempt {attempt})")
        try:
            return work.client.order(wanted.edition, wanted.period, wanted.ip, wanted.fqdn, host.remoteid)
        except PartnerPaymentRequired as error:
            work.breaker.trip(account, f"{error}; pay the invoice, then rerun")
            raise PartnerPaymentRequired(f"{error}; ordering stopped for the rest of this run: pay the invoice, then rerun") from None


def _look_up_order(work: LicenseWork, host: LedgerHost) -> AccountLicense | None:
    """Our order in the account (by remoteid, else by IP), waiting a little for it to show."""
    # Three more looks spread over `settle` seconds, in case the account shows new orders late.
    for pause in (0.0, work.settle / 6, work.settle / 3, work.settle / 2):
        work.sleep(pause)
        account = work.client.list()  # retried; if it still fails, the intent stays and a rerun looks again
        ours = [lic for lic in account if lic.live and lic.remoteid == host.remoteid] or [
            lic for lic in account if lic.live and lic.ip == work.wanted.ip
        ]
        if len(ours) > 1:
            raise LicenseConflict(
                f"{host.name}: the account holds {len(ours)} licenses for this host ({', '.join(l.id for l in ours)}); "
                "keep one, then rerun"
            )
        if ours:
            return ours[0]
    return None


def _wait_for_key(work: LicenseWork, license_id: str) -> str:
    """Poll `soft.edit` until the activation key is issued, with backoff, for at most key_wait seconds."""
    deadline = time.monotonic() + work.key_wait
    pause = 0.1
    while True:
        lic = work.client.get(license_id)
        if lic.key:
            return lic.key
        if time.monotonic() + pause > deadline:
            raise PartnerTransient(
                f"{work.wanted.host_name}: license {license_id} has no activation key after {work.key_wait:g} s; "
                "rerun later (the license is recorded and will not be ordered again)"
            )
        work.sleep(pause)
        pause = min(pause * 2, 2.0)


# -- fleet views: plan (before money is spent) and reconcile (servers ⇄ ledger ⇄ account) ---------


@dataclass(frozen=True)
class HostPlan:
    host_name: str
    wanted: WantedLicense
    action: str  # existing | adopted | reused | ordered | conflict
    license_id: str | None
    reason: str


def plan_hosts(wanted: Sequence[WantedLicense], account: Sequence[AccountLicense], ledger: LicenseLedger,
               reuse_free: bool = False) -> list[HostPlan]:
    """What a run would do for each host; free licenses are handed out once across the fleet."""
    known = {h.name: h for h in ledger.hosts()}
    held = {lic.host_name: lic for lic in ledger.licenses() if lic.host_name}
    taken = {lic.id for lic in ledger.licenses() if lic.host_name}
    plans = []
    for item in wanted:
        mine = held.get(item.host_name)
        host = known.get(item.host_name)
        try:
            plan = plan_license(item, account, ledger_license_id=mine.id if mine else None,
                                remoteid=host.remoteid if host else None, reuse_free=reuse_free,
                                taken=frozenset(taken - ({mine.id} if mine else set())))
        except LicenseConflict as error:
            plans.append(HostPlan(item.host_name, item, "conflict", None, str(error)))
            continue
        license_id = plan.license.id if plan.license else None
        if plan.action == "reused" and license_id:
            taken.add(license_id)
        plans.append(HostPlan(item.host_name, item, plan.action, license_id, plan.reason))
    return plans


@dataclass(frozen=True)
class Finding:
    kind: str  # missing | orphaned | ip-mismatch | edition-mismatch | expiring | unconfirmed
    host_name: str | None
    license_id: str | None
    detail: str


def reconcile(wanted: Sequence[WantedLicense], account: Sequence[AccountLicense], ledger: LicenseLedger,
              today: str, expiring_days: int = 30) -> list[Finding]:
    """Differences between the inventory's servers, the ledger and the account."""
    from datetime import date, timedelta

    live = {lic.id: lic for lic in account if lic.live}
    held = {lic.host_name: lic for lic in ledger.licenses() if lic.host_name}
    by_ip = {}
    for lic in live.values():
        by_ip.setdefault(lic.ip, []).append(lic)
    findings: list[Finding] = []
    used: set[str] = set()
    for item in wanted:
        ledger_lic = held.get(item.host_name)
        lic = live.get(ledger_lic.id) if ledger_lic else None
        lic = lic or next(iter(by_ip.get(item.ip, [])), None)
        if lic is None:
            gone = f" (the ledger's {ledger_lic.id} is not in the account)" if ledger_lic else ""
            findings.append(Finding("missing", item.host_name, None, f"no license for {item.ip}{gone}"))
            continue
        used.add(lic.id)
        if lic.ip != item.ip:
            findings.append(Finding("ip-mismatch", item.host_name, lic.id, f"license is for {lic.ip}, server is {item.ip}"))
        if lic.edition != item.edition:
            findings.append(Finding("edition-mismatch", item.host_name, lic.id, f"license is {lic.edition}, inventory wants {item.edition}"))
    limit = (date.fromisoformat(today) + timedelta(days=expiring_days)).isoformat()
    for lic in live.values():
        if lic.id not in used and not lic.free:
            findings.append(Finding("orphaned", None, lic.id, f"{lic.edition} license for {lic.ip} serves no inventory host"))
        if lic.expiredate and lic.expiredate <= limit:
            findings.append(Finding("expiring", None, lic.id, f"expires {lic.expiredate}"))
    for activation in ledger.activations(state="pending"):
        findings.append(Finding("unconfirmed", activation.host_name, activation.license_id,
                                "activation not yet confirmed by the account (the next run's report step retries)"))
    return findings
