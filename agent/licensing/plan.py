"""What a host's license needs, decided from facts alone: no account call, no ledger write, no clock.

`plan_for_host` is the decision. The license step's run (`ensure.py`) and its dry run make it the
same way, from the same facts: the license the host wants, the license its panel runs, what the
ledger says about it (`LedgerView`) and the account's licenses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.errors import LicenseConflict
from agent.partner.model import AccountLicense

if TYPE_CHECKING:
    from agent.economics.turnover import RolloutQuote

ACTIONS = ("existing", "adopted", "reused", "ordered", "none")


@dataclass(frozen=True)
class WantedLicense:
    host_name: str
    ip: str
    fqdn: str
    edition: str
    period: str

    @classmethod
    def from_vars(cls, host_name: str, ip: str, vars: Mapping[str, Any], fqdn: str | None = None) -> WantedLicense:
        """The license a host's vars ask for: `edition` (lite), `period` (monthly), its name: the `fqdn`
        var, else `fqdn` (what the server says), else the host's name."""
        return cls(
            host_name,
            str(ip),
            str(vars.get("fqdn") or fqdn or host_name),
            vars.get("edition", "lite"),
            vars.get("period", "monthly"),
        )


@dataclass(frozen=True)
class LedgerView:
    """What the ledger says that matters to one host's plan."""

    license_id: str | None = None  # the license the ledger gives this host
    remoteid: str | None = None  # the host's remoteid, if the ledger has seen it
    taken: frozenset[str] = frozenset()  # licenses the ledger gives to other hosts: never reused for this one


@dataclass(frozen=True)
class LicensePlan:
    action: str  # existing | adopted | reused | ordered | none
    license: AccountLicense | None
    reason: str
    stale_ledger_id: str | None = None  # the ledger's license for the host is gone from the account
    price: RolloutQuote | None = None  # for "ordered", when asked: the order at today's tier

    @property
    def existing_license(self) -> AccountLicense:
        """The account license an existing, adopted or reused plan takes; a plan without one is a bug."""
        if self.license is None:
            raise AssertionError(f"a {self.action!r} plan names no license")
        return self.license


def plan_for_host(
    wanted: WantedLicense,
    account: Sequence[AccountLicense],
    ledger: LedgerView,
    *,
    server_licid: str | None = None,
    reuse_free: bool = False,
    quote: Callable[[str, str], RolloutQuote] | None = None,
) -> LicensePlan:
    """What to do for `wanted`, and (with `quote`: edition, period -> the order's quote) what ordering costs.

    Raises LicenseConflict when the facts leave it unclear: guessing could pay for a license twice.
    """
    plan = plan_license(
        wanted,
        account,
        server_licid=server_licid,
        ledger_license_id=ledger.license_id,
        remoteid=ledger.remoteid,
        reuse_free=reuse_free,
        taken=ledger.taken,
    )
    if plan.action != "ordered" or quote is None:
        return plan
    return LicensePlan(
        plan.action, plan.license, plan.reason, plan.stale_ledger_id, quote(wanted.edition, wanted.period)
    )


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
    """`plan_for_host` with the ledger's view spelled out, and no price."""
    by_id = {lic.id: lic for lic in account if lic.live}
    if server_licid and server_licid in by_id:
        return _checked(wanted, LicensePlan("existing", by_id[server_licid], f"the server runs license {server_licid}"))
    if server_licid and server_licid != "0":
        # The installed panel runs a license this account does not hold (bought elsewhere, or a
        # trial). The installer is not rerun on it, so a new order would be paid and never used.
        return LicensePlan(
            "none",
            None,
            f"the server runs license {server_licid}, which is not in this partner account: not ordering another",
        )
    stale = None
    if ledger_license_id:
        if ledger_license_id in by_id:
            return _checked(
                wanted, LicensePlan("existing", by_id[ledger_license_id], f"the ledger's license {ledger_license_id}")
            )
        stale = ledger_license_id
    mine = [lic for lic in by_id.values() if lic.ip == wanted.ip or (remoteid and lic.remoteid == remoteid)]
    if len(mine) > 1:
        ids = ", ".join(sorted(lic.id for lic in mine))
        raise LicenseConflict(
            f"{wanted.host_name}: the account holds {len(mine)} licenses for {wanted.ip} ({ids}); keep one "
            "(`ispagent licenses delete ID`), then rerun: ordering another would be paid twice"
        )
    if mine:
        return _checked(
            wanted, LicensePlan("adopted", mine[0], f"the account's license {mine[0].id} for this IP", stale)
        )
    if reuse_free:
        free = sorted(
            (lic for lic in by_id.values() if lic.free and lic.edition == wanted.edition and lic.id not in taken),
            key=lambda lic: int(lic.id) if lic.id.isdigit() else 0,
        )
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
