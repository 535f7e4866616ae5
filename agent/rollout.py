"""A rollout: the selected hosts grouped by the partner account they belong to, with the services they share.

Commands that speak to the account or the ledger (plan, reconcile, licenses, turnover) go through
it, so an inventory with several accounts is handled account by account, never as its first host's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.clock import UTC, Clock
from agent.errors import InputError
from agent.hostsettings import AccountSettings, read_account_settings
from agent.inventory.model import Host
from agent.runner.services import RunServices

if TYPE_CHECKING:
    from agent.economics.program import Program
    from agent.economics.turnover import TurnoverReport
    from agent.ledger import LicenseLedger
    from agent.licensing.fleet import Finding, FleetPlan
    from agent.partner.account_view import AccountView
    from agent.partner.client import PartnerClient


@dataclass(frozen=True)
class AccountGroup:
    """The hosts of one account (same partner settings, ledger and program), in inventory order."""

    account: AccountSettings
    hosts: tuple[Host, ...]


class Rollout:
    """The selected hosts by account; partner clients and ledgers opened once, closed with the rollout."""

    def __init__(
        self,
        hosts: Iterable[Host],
        *,
        state_dir: Path | None = None,
        clock: Clock = UTC,
        where: str = "hosts given in Python",
    ) -> None:
        self.hosts = tuple(hosts)
        self.state_dir = state_dir
        self.clock = clock
        self.where = where
        self.services = RunServices()
        self.groups = _grouped(self.hosts, where)

    @classmethod
    def from_inventory(
        cls, path: Path, limit: str | None = None, *, state_dir: Path | None = None, clock: Clock = UTC
    ) -> Rollout:
        from agent.inventory.loader import load_inventory

        return cls(load_inventory(path).select(limit), state_dir=state_dir, clock=clock, where=str(path))

    def single(self, what: str, fix: str = "select the hosts of one with --limit") -> AccountGroup:
        """The one account of these hosts; an InputError (ending with `fix`) when there are none or several."""
        if not self.groups:
            raise InputError(f"{what}: no hosts selected in {self.where}")
        if len(self.groups) > 1:
            names = "; ".join(_named(group) for group in self.groups[:3])
            raise InputError(
                f"{what}: the selected hosts belong to {len(self.groups)} partner accounts ({names}); {fix}"
            )
        return self.groups[0]

    def client(self, group: AccountGroup) -> PartnerClient:
        return self.services.partner(group.account.partner)

    def view(self, group: AccountGroup) -> AccountView:
        """`group`'s account, listed once for the rollout and kept current with its writes."""
        return self.services.account_view(group.account.partner)

    def ledger(self, group: AccountGroup) -> LicenseLedger:
        return self.services.ledger(group.account.ledger_location(self.state_dir))

    def program(self, group: AccountGroup) -> Program:
        from agent.economics.program import load_program

        return load_program(group.account.program_location())

    def plan(self, group: AccountGroup) -> FleetPlan:
        """Per host of `group`, whether its license would be adopted, reused or ordered, and at what price today."""
        from agent.licensing.fleet import plan_fleet, wanted_licenses

        return plan_fleet(
            wanted_licenses(group.hosts),
            self.view(group).licenses(),
            self.ledger(group),
            self.program(group),
            self.clock.today(),
            group.account.partner.reuse_free,
        )

    def reconcile(self, group: AccountGroup, expiring_days: int = 30) -> list[Finding]:
        """`group`'s servers, its ledger and its account compared (agent/licensing/fleet.py)."""
        from agent.licensing.fleet import reconcile, wanted_licenses

        return reconcile(
            wanted_licenses(group.hosts),
            self.view(group).licenses(),
            self.ledger(group),
            self.clock.today().isoformat(),
            expiring_days,
        )

    def turnover(self, group: AccountGroup) -> TurnoverReport:
        """This month's turnover, tier and obligations of `group`'s account, from its ledger."""
        from agent.economics.turnover import turnover_report

        return turnover_report(self.ledger(group), self.program(group), self.clock.today())

    def close(self) -> None:
        self.services.close()

    def __enter__(self) -> Rollout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(group: AccountGroup) -> str:
    more = f" and {len(group.hosts) - 1} more" if len(group.hosts) > 1 else ""
    return f"{group.account.describe()}: {group.hosts[0].name}{more}"


def _grouped(hosts: tuple[Host, ...], where: str) -> tuple[AccountGroup, ...]:
    groups: dict[tuple[Any, ...], tuple[AccountSettings, list[Host]]] = {}
    for host in hosts:
        try:
            account = read_account_settings(host.vars)
        except InputError as error:
            raise type(error)(f"{where}: hosts.{host.name}: {error}") from None
        groups.setdefault(account.key(), (account, []))[1].append(host)
    return tuple(AccountGroup(account, tuple(members)) for account, members in groups.values())
