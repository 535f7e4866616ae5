"""Where the ledger and the partner account stand after a run: what an unattended job must tell a person.

A run can end with every host ok while an activation is still unconfirmed by the account (the next
run's report step retries it) or while licenses near their expiry date: nobody reads the host
lines of a nightly job, so the summary, the exit code and the metrics say it. Read once, after the
hosts are done, with the run's own ledger and partner clients; a failure to read is reported, never
fatal to the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Iterable

from agent.errors import IspagentError
from agent.secrets import mask

if TYPE_CHECKING:
    from agent.hostsettings import AccountSettings
    from agent.runner.services import RunServices

EXPIRY_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Unconfirmed:
    host: str
    license_id: str
    attempts: int


@dataclass(frozen=True)
class Expiring:
    license_id: str
    licname: str
    ip: str
    expires: str
    days: int


@dataclass(frozen=True)
class AccountStanding:
    unconfirmed: tuple[Unconfirmed, ...] = ()
    expiring: tuple[Expiring, ...] = ()
    month: str | None = None  # YYYY-MM of the turnover figures
    turnover: Decimal | None = None
    tier: int | None = None
    months_under: int | None = None
    currency: str | None = None
    ordered_list_total: Decimal | None = None  # list price of the licenses this run ordered
    problems: tuple[str, ...] = field(default_factory=tuple)  # what could not be read, masked

    def to_report(self) -> dict:
        return {
            "unconfirmed_activations": [u.__dict__ for u in self.unconfirmed],
            "expiring_licenses": [e.__dict__ for e in self.expiring],
            "month": self.month,
            "turnover": None if self.turnover is None else str(self.turnover),
            "tier": self.tier,
            "months_under": self.months_under,
            "currency": self.currency,
            "ordered_list_total": None if self.ordered_list_total is None else str(self.ordered_list_total),
            "problems": list(self.problems),
        }


def expiring_licenses(licenses: Iterable, today: date, days: int = EXPIRY_WINDOW_DAYS) -> list[Expiring]:
    """Live account licenses whose expiry date is within `days` of `today` (or already past)."""
    found = []
    for lic in licenses:
        if not lic.live or not lic.expiredate:
            continue
        try:
            expires = date.fromisoformat(lic.expiredate[:10])
        except ValueError:
            continue
        if expires <= today + timedelta(days=days):
            found.append(Expiring(lic.id, lic.licname, lic.ip, expires.isoformat(), (expires - today).days))
    return sorted(found, key=lambda e: (e.expires, e.license_id))


def read_standing(
    services: RunServices, settings: Iterable[AccountSettings], host_names: Iterable[str], state_dir, today: date,
    orders: Iterable[tuple[str, str]] = (),
) -> AccountStanding:
    """Unconfirmed activations of the run's hosts, expiring licenses, this month's turnover, and the
    list price of `orders` ((edition, period) of each license the run ordered)."""
    from agent.economics.program import load_program
    from agent.economics.turnover import turnover_report

    settings = list(settings)
    names = set(host_names)
    problems: list[str] = []
    unconfirmed: list[Unconfirmed] = []
    expiring: dict[str, Expiring] = {}
    report = program = None
    for location in dict.fromkeys(s.ledger_location(state_dir) for s in settings):
        try:
            ledger = services.ledger(location)
            unconfirmed += [Unconfirmed(a.host_name, a.license_id, a.attempts)
                            for a in ledger.activations(state="pending") if a.host_name in names]
            if report is None:
                program = load_program(settings[0].program_location())
                report = turnover_report(ledger, program, today)
        except Exception as error:  # the database layer's own errors too: a run's outcome must survive them
            problems.append(mask(f"ledger: {error}"))
    accounts = {(s.partner.api_url, s.partner.credentials_file): s.partner for s in settings}
    for partner in accounts.values():
        try:
            for lic in expiring_licenses(services.account_view(partner).licenses(), today):
                expiring.setdefault(lic.license_id, lic)
        except IspagentError as error:
            problems.append(mask(f"partner account: {error}"))
    return AccountStanding(
        unconfirmed=tuple(unconfirmed),
        expiring=tuple(expiring.values()),
        month=str(report.month) if report else None,
        turnover=report.statement.turnover if report else None,
        tier=report.tier_now if report else None,
        months_under=report.months_under if report else None,
        currency=program.currency if program else None,
        ordered_list_total=_list_total(program, orders) if program else None,
        problems=tuple(problems),
    )


def _list_total(program, orders: Iterable[tuple[str, str]]) -> Decimal | None:
    try:
        return sum((program.price(edition, period) for edition, period in orders), Decimal(0))
    except (KeyError, LookupError, IspagentError):
        return None
