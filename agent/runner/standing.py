"""Where the ledger and the partner account stand after a run: what an unattended job must tell a person.

A run can end with every host ok while an activation is still unconfirmed by the account (the next
run's report step retries it) or while licenses near their expiry date: nobody reads the host
lines of a nightly job, so the summary, the exit code and the metrics say it. Read once, after the
hosts are done, with the run's own ledger and partner clients; a failure to read is reported, never
fatal to the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING

from agent.errors import IspagentError
from agent.runner.events import HostOutcome
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
class Order:
    """A license the run ordered: whose, which, and (once the program is read) what it costs."""

    host: str
    license_id: str
    edition: str
    period: str
    list_price: Decimal | None = None
    discount: Decimal | None = None  # percent, at this month's tier after the run
    price: Decimal | None = None  # list price less the discount

    def prices(self) -> dict[str, str]:
        """The price keys of a host's license entry (those a dry run's license step writes), as text."""
        if self.price is None:
            return {}
        return {"list_price": str(self.list_price), "discount": str(self.discount), "price": str(self.price)}


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
    ordered: tuple[Order, ...] = ()  # the licenses this run ordered, priced
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
            "ordered_licenses": [
                {"host": o.host, "license_id": o.license_id, "edition": o.edition, "period": o.period, **o.prices()}
                for o in self.ordered
            ],
            "problems": list(self.problems),
        }

    @classmethod
    def from_report(cls, data: dict) -> AccountStanding:
        """The standing `to_report` wrote (into run.json too): `runs show` renders a run from it.

        ValueError, KeyError or TypeError when `data` is not what to_report writes."""
        return cls(
            unconfirmed=tuple(
                Unconfirmed(str(u["host"]), str(u["license_id"]), int(u["attempts"]))
                for u in data["unconfirmed_activations"]
            ),
            expiring=tuple(
                Expiring(str(e["license_id"]), str(e["licname"]), str(e["ip"]), str(e["expires"]), int(e["days"]))
                for e in data["expiring_licenses"]
            ),
            month=_text(data.get("month")),
            turnover=_decimal(data.get("turnover")),
            tier=_integer(data.get("tier")),
            months_under=_integer(data.get("months_under")),
            currency=_text(data.get("currency")),
            ordered_list_total=_decimal(data.get("ordered_list_total")),
            ordered=tuple(
                Order(
                    str(o["host"]),
                    str(o["license_id"]),
                    str(o["edition"]),
                    str(o["period"]),
                    _decimal(o.get("list_price")),
                    _decimal(o.get("discount")),
                    _decimal(o.get("price")),
                )
                for o in data.get("ordered_licenses") or ()
            ),
            problems=tuple(str(problem) for problem in data.get("problems") or ()),
        )


def _text(value) -> str | None:
    return None if value is None else str(value)


def _integer(value) -> int | None:
    return None if value is None else int(value)


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a number: {value!r}") from None


def priced(outcomes: Iterable[HostOutcome], standing: AccountStanding | None) -> list[HostOutcome]:
    """`outcomes` with each ordered license's price in its host's license entry (the report's price column).

    The license step knows what it ordered, not what it costs: the price is the month's, read after
    the run with the turnover."""
    by_host = {order.host: order for order in standing.ordered} if standing else {}
    result = []
    for outcome in outcomes:
        order = by_host.get(outcome.name)
        lic = outcome.report.get("license")
        if order is None or not order.prices() or not isinstance(lic, dict) or lic.get("id") != order.license_id:
            result.append(outcome)
            continue
        result.append(replace(outcome, report={**outcome.report, "license": {**lic, **order.prices()}}))
    return result


def expiring_licenses(licenses: Iterable, today: date, days: int = EXPIRY_WINDOW_DAYS) -> list[Expiring]:
    """Live account licenses whose expiry date is within `days` of `today` (or already past).

    A partner's monthly licenses all fall in the window: 20 000 of them are read, dated and sorted
    at the end of every run, so each distinct date is parsed once."""
    last = today + timedelta(days=days)
    found = []
    for lic in licenses:
        if not lic.live or not lic.expiredate:
            continue
        expires = _expiry_day(lic.expiredate[:10])
        if expires is not None and expires <= last:
            found.append(Expiring(lic.id, lic.licname, lic.ip, expires.isoformat(), (expires - today).days))
    return sorted(found, key=attrgetter("expires", "license_id"))


@lru_cache(maxsize=4096)  # an account's licenses expire on a few hundred days; bounded: the account may hold any text
def _expiry_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def read_standing(
    services: RunServices,
    settings: Iterable[AccountSettings],
    host_names: Iterable[str],
    state_dir,
    today: date,
    orders: Iterable[Order] = (),
) -> AccountStanding:
    """Unconfirmed activations of the run's hosts, expiring licenses, this month's turnover, and the
    price of `orders` (each license the run ordered).

    A license this run ordered is not "expiring": it has its whole first period ahead (a monthly
    one, 30 days, always fell in the window), and a person told of it has nothing to do."""
    from agent.economics.program import load_program
    from agent.economics.turnover import turnover_report

    settings = list(settings)
    orders = list(orders)
    ordered_ids = {order.license_id for order in orders}
    names = set(host_names)
    problems: list[str] = []
    unconfirmed: list[Unconfirmed] = []
    expiring: dict[str, Expiring] = {}
    report = program = None
    for location in dict.fromkeys(s.ledger_location(state_dir) for s in settings):
        try:
            ledger = services.ledger(location)
            unconfirmed += [
                Unconfirmed(a.host_name, a.license_id, a.attempts)
                for a in ledger.activations(state="pending")
                if a.host_name in names
            ]
            if report is None:
                program = load_program(settings[0].program_location())
                report = turnover_report(ledger, program, today)
        except Exception as error:  # the database layer's own errors too: a run's outcome must survive them
            problems.append(mask(f"ledger: {error}"))
    accounts = {(s.partner.api_url, s.partner.credentials_file): s.partner for s in settings}
    for partner in accounts.values():
        try:
            for lic in expiring_licenses(services.account_view(partner).licenses(), today):
                if lic.license_id not in ordered_ids:
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
        ordered=tuple(_priced_orders(program, report, orders)),
        problems=tuple(problems),
    )


def _list_total(program, orders: list[Order]) -> Decimal | None:
    try:
        return sum((program.price(order.edition, order.period) for order in orders), Decimal(0))
    except (KeyError, LookupError, IspagentError):
        return None


def _priced_orders(program, report, orders: list[Order]) -> list[Order]:
    """Each order at its list price less the discount of the month's tier now (as the turnover beside it)."""
    if program is None or report is None:
        return orders
    discount = program.discount(report.tier_now, report.status_lost)
    priced_orders = []
    for order in orders:
        try:
            list_price = program.price(order.edition, order.period)
        except (KeyError, LookupError):
            priced_orders.append(order)
            continue
        price = (list_price * (100 - discount) / 100).quantize(Decimal("0.01"))
        priced_orders.append(replace(order, list_price=list_price, discount=discount, price=price))
    return priced_orders
