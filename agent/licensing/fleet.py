"""Many hosts at once: what a rollout would do and cost (before money is spent), and reconcile
(servers ⇄ ledger ⇄ account, licensing and billing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol

from agent.economics.program import Program
from agent.economics.turnover import OrderQuote, RolloutQuote, quote_rollout
from agent.errors import LicenseConflict
from agent.ledger import LicenseLedger
from agent.licensing.plan import LedgerView, WantedLicense, plan_for_host
from agent.partner.model import AccountLicense


class InventoryHost(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def vars(self) -> Mapping[str, Any]: ...


def wanted_licenses(hosts: Iterable[InventoryHost]) -> list[WantedLicense]:
    """The license each inventory host wants, for its inventory address (no server is asked)."""
    return [WantedLicense.from_vars(h.name, h.address, h.vars) for h in hosts]


@dataclass(frozen=True)
class HostPlan:
    host_name: str
    wanted: WantedLicense
    action: str  # existing | adopted | reused | ordered | conflict
    license_id: str | None
    reason: str
    price: OrderQuote | None = None  # what ordering it costs (plan_fleet, "ordered" only)


def plan_hosts(
    wanted: Sequence[WantedLicense], account: Sequence[AccountLicense], ledger: LicenseLedger, reuse_free: bool = False
) -> list[HostPlan]:
    """What a run would do for each host; free licenses are handed out once across the fleet."""
    known = {h.name: h for h in ledger.hosts()}
    holding = [lic for lic in ledger.licenses() if lic.host_name]
    held = {lic.host_name: lic for lic in holding}
    taken = {lic.id for lic in holding}
    plans = []
    for item in wanted:
        mine, host = held.get(item.host_name), known.get(item.host_name)
        view = LedgerView(
            mine.id if mine else None,
            host.remoteid if host else None,
            frozenset(taken - ({mine.id} if mine else set())),
        )
        try:
            plan = plan_for_host(item, account, view, reuse_free=reuse_free)
        except LicenseConflict as error:
            plans.append(HostPlan(item.host_name, item, "conflict", None, str(error)))
            continue
        license_id = plan.license.id if plan.license else None
        if plan.action == "reused" and license_id:
            taken.add(license_id)
        plans.append(HostPlan(item.host_name, item, plan.action, license_id, plan.reason))
    return plans


@dataclass(frozen=True)
class PlanTotal:
    action: str
    edition: str
    period: str
    hosts: int
    price: Decimal | None  # after discount, for "ordered"


@dataclass(frozen=True)
class FleetPlan:
    hosts: list[HostPlan]
    totals: list[PlanTotal]  # by action, edition and period, sorted
    quote: RolloutQuote  # every order, priced in inventory order as this month's next charges
    program: Program

    @property
    def ordered(self) -> list[HostPlan]:
        return [p for p in self.hosts if p.action == "ordered"]


def plan_fleet(
    wanted: Sequence[WantedLicense],
    account: Sequence[AccountLicense],
    ledger: LicenseLedger,
    program: Program,
    today: date,
    reuse_free: bool = False,
) -> FleetPlan:
    """`plan_hosts` with each order priced at the discount it would get today, tier raises included, and totals."""
    plans = plan_hosts(wanted, account, ledger, reuse_free)
    ordered = [p for p in plans if p.action == "ordered"]
    quote = quote_rollout(ledger, program, [(p.wanted.edition, p.wanted.period) for p in ordered], today)
    prices = {p.host_name: q for p, q in zip(ordered, quote.orders)}
    plans = [HostPlan(p.host_name, p.wanted, p.action, p.license_id, p.reason, prices.get(p.host_name)) for p in plans]
    counts = Counter((p.action, p.wanted.edition, p.wanted.period) for p in plans)
    totals = [
        PlanTotal(
            action,
            edition,
            period,
            count,
            sum(
                (p.price.price for p in plans if p.price and (p.wanted.edition, p.wanted.period) == (edition, period)),
                Decimal(0),
            )
            if action == "ordered"
            else None,
        )
        for (action, edition, period), count in sorted(counts.items())
    ]
    return FleetPlan(plans, totals, quote, program)


@dataclass(frozen=True)
class Finding:
    kind: str  # missing | orphaned | ip-mismatch | edition-mismatch | expiring | unconfirmed | unbilled | billed-gone
    host_name: str | None
    license_id: str | None
    detail: str


def reconcile(
    wanted: Sequence[WantedLicense],
    account: Sequence[AccountLicense],
    ledger: LicenseLedger,
    today: str,
    expiring_days: int = 30,
) -> list[Finding]:
    """Differences between the inventory's servers, the ledger and the account, then `billing_findings`."""
    live = {lic.id: lic for lic in account if lic.live}
    held = {lic.host_name: lic for lic in ledger.licenses() if lic.host_name}
    by_ip: dict[str, list[AccountLicense]] = {}
    for lic in live.values():
        by_ip.setdefault(lic.ip, []).append(lic)
    findings: list[Finding] = []
    used: set[str] = set()
    for item in wanted:
        ledger_lic = held.get(item.host_name)
        known = live.get(ledger_lic.id) if ledger_lic else None
        found = known or next(iter(by_ip.get(item.ip, [])), None)

        if found is None:
            gone = f" (the ledger's {ledger_lic.id} is not in the account)" if ledger_lic else ""
            findings.append(Finding("missing", item.host_name, None, f"no license for {item.ip}{gone}"))
            continue
        used.add(found.id)
        if found.ip != item.ip:
            findings.append(
                Finding("ip-mismatch", item.host_name, found.id, f"license is for {found.ip}, server is {item.ip}")
            )
        if found.edition != item.edition:
            findings.append(
                Finding(
                    "edition-mismatch",
                    item.host_name,
                    found.id,
                    f"license is {found.edition}, inventory wants {item.edition}",
                )
            )
    limit = (date.fromisoformat(today) + timedelta(days=expiring_days)).isoformat()
    for lic in live.values():
        if lic.id not in used and not lic.free:
            findings.append(
                Finding("orphaned", None, lic.id, f"{lic.edition} license for {lic.ip} serves no inventory host")
            )
        if lic.expiredate and lic.expiredate <= limit:
            findings.append(Finding("expiring", None, lic.id, f"expires {lic.expiredate}"))
    for activation in ledger.activations(state="pending"):
        findings.append(
            Finding(
                "unconfirmed",
                activation.host_name,
                activation.license_id,
                "activation not yet confirmed by the account (the next run's report step retries)",
            )
        )
    return findings + billing_findings(account, ledger.billing.running_terms())


def billing_findings(account: Sequence[AccountLicense], running: Mapping[str, str]) -> list[Finding]:
    """Where the ledger's billing (`running`: license id -> billed since) and the account disagree:
    turnover and forecasts are off by these."""
    live = {lic.id: lic for lic in account if lic.live}
    findings = []
    for lic in sorted(live.values(), key=lambda l: l.id):
        if lic.id not in running and not lic.free:
            findings.append(
                Finding(
                    "unbilled",
                    None,
                    lic.id,
                    f"{lic.edition or lic.pricelist} license for {lic.ip} has no "
                    "activation in the ledger: turnover misses it; import its history (`ispagent ledger import`)",
                )
            )
    for license_id, started in sorted(running.items()):
        if license_id not in live:
            findings.append(
                Finding(
                    "billed-gone",
                    None,
                    license_id,
                    f"billed since {started}, not in the account any more: "
                    "import its deactivation (`ispagent ledger import`) so renewals stop counting",
                )
            )
    return findings
