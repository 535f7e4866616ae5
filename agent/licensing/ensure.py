"""Getting a host its license, exactly once: adopt, reuse or order, through crashes and lost replies.

`ensure_license` carries out `plan_for_host` (plan.py) under the host's ledger lock:

- the intent to order is written (fsynced) before the order is sent, the license id right after;
- the account is read from the run's `AccountView` (agent/partner/account_view.py: listed once per
  run, kept current with the run's writes); an order or the reuse of a free license is decided only
  on a list sent after the host's lock was taken (the argument is in that module's docstring), and a
  license kept or adopted from an older list is read again (with its key) before it is handed on;
- after any uncertain outcome (timeout, reset, 5xx, crash) the account is searched by the host's
  remoteid and IP before another order is tried: the API has no idempotency keys;
- an order refused for payment trips the `OrderBreaker` (`LicenseWork.breaker`, per account,
  breaker.py): no other host tries, and with the ledger's breaker no other agent on the ledger either;
- the host's lock is keyed on the server (its IP: what a license is bound to), so two inventories
  naming one server differently never license it twice; it is given back before the wait for the
  activation key, since the ledger already records the license.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import (
    LicenseConflict,
    PartnerError,
    PartnerNotFound,
    PartnerPaymentRequired,
    PartnerTransient,
)
from agent.ledger import LedgerHost, LicenseLedger
from agent.licensing.breaker import OrderBreaker
from agent.licensing.grant import LicenseGrant
from agent.licensing.plan import LedgerView, LicensePlan, WantedLicense, plan_for_host
from agent.licensing.view import ledger_view, with_taken
from agent.partner.account_view import AccountView
from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus

ORDER_ATTEMPTS = 3  # orders sent for one host in one step, each only after a lookup found nothing
PASSES = 4  # whole adopt-or-order passes per step when the account's answers get lost
PASS_BACKOFF = (0.5, 1.0, 2.0)


@dataclass
class LicenseWork:
    """What ensure_license needs: the account, the ledger, the host, and how to wait.

    `view` is the run's view of the account (shared by its hosts); without one, the host gets a view
    of its own (one list, as a lone call should)."""

    client: PartnerClient
    ledger: LicenseLedger
    wanted: WantedLicense
    address: str
    breaker: OrderBreaker  # per account: a refusal for payment stops ordering (breaker.py)
    server_licid: str | None = None
    reuse_free: bool = False
    key_wait: float = 60.0
    settle: float = 3.0  # seconds to keep looking for an order whose answer was lost
    say: Callable[[str], None] = lambda line: None
    sleep: Callable[[float], None] = time.sleep
    view: AccountView = None  # type: ignore[assignment]  # set in __post_init__ when not given

    def __post_init__(self) -> None:
        if self.view is None:
            self.view = AccountView(self.client)


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
    with ledger.host_lock(server_lock_key(wanted.ip)):
        locked = work.view.ticket()  # a list with a later ticket left after this lock was taken
        intent = ledger.order_intent(wanted.host_name)
        pending_order = intent is not None and intent.state == "ordering"
        plan = _plan(work, host, locked)
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
            license_id = plan.existing_license.id
            action = _take(work, host, plan, pending_order)
    key = _wait_for_key(work, license_id)
    return LicenseGrant(license_id, key, wanted.edition, wanted.period, action)


def server_lock_key(ip: str) -> str:
    """The ledger lock of the server at `ip`, whatever inventory name it goes by."""
    return f"server {ip}"


def _plan(work: LicenseWork, host: LedgerHost, locked: int) -> LicensePlan:
    """The plan, from the run's view; when money would move or the account seems to contradict
    itself, from a list sent after the host's lock was taken (`locked`): see account_view.py."""
    known = ledger_view(work.ledger, host.name)
    try:
        plan = _plan_on(work, known, listed_after=0)
        if plan.action not in ("ordered", "reused"):
            return plan
    except LicenseConflict:
        pass  # perhaps only the view's age: decided again on a fresh list, raised again if it holds
    return _plan_on(work, known, listed_after=locked)


def _plan_on(work: LicenseWork, known: LedgerView, listed_after: int) -> LicensePlan:
    account = account_near(work.view, work.wanted, known, work.server_licid, work.reuse_free, listed_after)
    known = with_taken(work.ledger, known, work.wanted.host_name, account)
    return plan_for_host(work.wanted, account, known, server_licid=work.server_licid, reuse_free=work.reuse_free)


def account_near(
    view: AccountView,
    wanted: WantedLicense,
    known: LedgerView,
    server_licid: str | None,
    reuse_free: bool,
    listed_after: int = 0,
) -> list[AccountLicense]:
    """The account's licenses that `plan_for_host` looks at for this host: planning on them decides as
    on the whole account."""
    return view.near(
        wanted.ip, known.remoteid, (server_licid, known.license_id), free=reuse_free, listed_after=listed_after
    )


def _take(work: LicenseWork, host: LedgerHost, plan: LicensePlan, pending_order: bool) -> str:
    """Adopt or reuse an existing license of the account; returns the action to report."""
    wanted, lic = work.wanted, plan.existing_license
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
    with work.breaker.gate(account, work.client.settings.order_interval):
        work.breaker.admit(account)
        work.say(f"ordering a {wanted.edition} {wanted.period} license for {wanted.ip} (attempt {attempt})")
        try:
            license_id = work.client.order(wanted.edition, wanted.period, wanted.ip, wanted.fqdn, host.remoteid)
        except PartnerPaymentRequired as error:
            work.breaker.trip(account, f"{error}; pay the invoice, then rerun")
            raise PartnerPaymentRequired(f"{error}; ordering stopped: pay the invoice, then rerun") from None
        work.breaker.succeeded(account)
        return license_id


def _look_up_order(work: LicenseWork, host: LedgerHost) -> AccountLicense | None:
    """Our order in the account (by remoteid, else by IP), waiting a little for it to show."""
    # Three more looks spread over `settle` seconds, in case the account shows new orders late.
    for pause in (0.0, work.settle / 6, work.settle / 3, work.settle / 2):
        work.sleep(pause)
        # Each look a list sent after the pause (shared with hosts looking at the same time); if it
        # still fails after its retries, the intent stays and a rerun looks again.
        account = work.view.near(work.wanted.ip, host.remoteid, listed_after=work.view.ticket())
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
    """Poll `soft.edit` until the activation key is issued, with backoff, for at most key_wait seconds.

    The license is read here, after the decision: if it is gone or on another IP by now (the view it
    was chosen from was older than that change), the pass starts again from a fresh list rather
    than hand this server a key that is not its own."""
    deadline = time.monotonic() + work.key_wait
    pause = 0.1
    while True:
        lic = _read_own(work, license_id)
        if lic.key:
            return lic.key
        if time.monotonic() + pause > deadline:
            raise PartnerTransient(
                f"{work.wanted.host_name}: license {license_id} has no activation key after {work.key_wait:g} s; "
                "rerun later (the license is recorded and will not be ordered again)"
            )
        work.sleep(pause)
        pause = min(pause * 2, 2.0)


def _read_own(work: LicenseWork, license_id: str) -> AccountLicense:
    """License `license_id` as the account has it now; PartnerTransient (a fresh pass) if it is not this host's."""
    try:
        lic = work.client.get(license_id)
    except PartnerNotFound:
        lic = None
    if lic is not None and lic.live and lic.ip == work.wanted.ip:
        return lic
    work.view.invalidate()
    where = "no longer in the account" if lic is None or not lic.live else f"now on {lic.ip}"
    raise PartnerTransient(f"{work.wanted.host_name}: license {license_id} is {where}")
