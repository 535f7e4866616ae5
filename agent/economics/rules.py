"""The partner program's money rules, as pure functions of charges and a Program.

Nothing here reads the ledger or the clock: `agent/economics/turnover.py` does, then calls these.
Point numbers (§) are the reseller program's terms as docs/economics.md lists them.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from agent.economics.program import Program
from agent.errors import InputError
from agent.secrets import shown

CENT = Decimal("0.01")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: str) -> date | None:
    """A day written YYYY-MM-DD, the one form money input takes; None for anything else.

    `date.fromisoformat` alone also reads 20260105 and 2026-W02-1: stored as written, such a date
    would sort and group as text with no month of its own."""
    if not _DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


KIND_ORDER = {"renewal": 0, "activation": 1}  # on one day, automatic renewals run before the day's orders


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str, option: str = "--month") -> Month:
        match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise InputError(f"{option} {shown(text)}: not a month; write YYYY-MM, e.g. 2026-11")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """The first day of the next month."""
        return self.shift(1).start

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def shift(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Charge:
    """`quantity` identical charges on one day (an activation, or a renewal: §5)."""

    on: str  # YYYY-MM-DD
    kind: str  # activation | renewal
    edition: str
    period: str
    unit_price: Decimal  # list price, EUR
    quantity: int = 1


@dataclass(frozen=True)
class Applied:
    """Charges of one Charge billed at one discount (a tier raise can split a Charge in two)."""

    charge: Charge
    quantity: int
    discount: Decimal  # percent
    tier: int


@dataclass(frozen=True)
class TierRaise:
    on: str
    tier: int
    turnover: Decimal  # the running turnover that reached the tier


@dataclass(frozen=True)
class InvoiceLine:
    kind: str
    edition: str
    period: str
    unit_price: Decimal
    discount: Decimal
    quantity: int
    list_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Standing:
    """Where the partner stands when a month begins."""

    tier: int  # index into Program.tiers; -1: under the first tier
    months_under: int = 0  # complete months in a row under the minimum, up to the month before
    lost: bool = False  # status lost (§10): no discount


@dataclass(frozen=True)
class MonthStatement:
    month: Month
    opening: Standing
    applied: tuple[Applied, ...]
    raises: tuple[TierRaise, ...]
    closing_tier: int
    turnover: Decimal  # by the program's turnover_basis
    list_total: Decimal
    lines: tuple[InvoiceLine, ...] = field(default=())

    @property
    def invoice_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def discount_total(self) -> Decimal:
        return self.list_total - self.invoice_total


def month_statement(month: Month, charges: list[Charge], opening: Standing, program: Program) -> MonthStatement:
    """The month's invoice (§5: what was activated and renewed in it) at the discount of the moment.

    The month opens at `opening.tier`; when the running turnover reaches a higher tier's minimum,
    that discount applies from the next charge on (or from that charge, `raise_applies_to`) (§17).
    """
    ordered = sorted(charges, key=lambda c: (c.on, KIND_ORDER.get(c.kind, 2)))
    tier, running = opening.tier, Decimal(0)
    applied: list[Applied] = []
    raises: list[TierRaise] = []
    for charge in ordered:
        remaining = charge.quantity
        while remaining:
            discount = program.discount(tier, opening.lost)
            unit = _counted(charge.unit_price, discount, program)
            count = _before_raise(remaining, unit, running, tier, opening.lost, program)
            if count == 0:  # this very charge reaches the next tier and takes its discount
                tier += 1
                raises.append(TierRaise(charge.on, tier, running + unit))
                continue
            applied.append(Applied(charge, count, discount, tier))
            running += unit * count
            remaining -= count
            while (
                not opening.lost and tier + 1 < len(program.tiers) and running >= program.tiers[tier + 1].min_turnover
            ):
                tier += 1
                raises.append(TierRaise(charge.on, tier, running))
    list_total = sum((a.charge.unit_price * a.quantity for a in applied), Decimal(0))
    return MonthStatement(month, opening, tuple(applied), tuple(raises), tier, running, list_total, _lines(applied))


def _counted(unit_price: Decimal, discount: Decimal, program: Program) -> Decimal:
    """What one charge adds to the turnover: its list price, or its discounted price (turnover_basis)."""
    if program.turnover_basis == "list":
        return unit_price
    return unit_price * (100 - discount) / 100


def _before_raise(remaining: int, unit: Decimal, running: Decimal, tier: int, lost: bool, program: Program) -> int:
    """How many of `remaining` charges are billed before the tier goes up."""
    if lost or tier + 1 >= len(program.tiers) or unit <= 0:
        return remaining
    need = program.tiers[tier + 1].min_turnover - running
    crossing = int((need / unit).to_integral_value(ROUND_CEILING))  # the charge that reaches the tier
    if program.raise_applies_to == "this_charge":
        crossing -= 1
    return max(0, min(remaining, crossing))


def _lines(applied: list[Applied]) -> tuple[InvoiceLine, ...]:
    """Invoice lines: one per kind, edition, period, price and discount; amounts rounded per line."""
    grouped: dict[tuple[str, str, str, Decimal, Decimal], int] = {}
    for a in applied:
        key = (a.charge.kind, a.charge.edition, a.charge.period, a.charge.unit_price, a.discount)
        grouped[key] = grouped.get(key, 0) + a.quantity
    lines = []
    for (kind, edition, period, unit, discount), quantity in sorted(grouped.items(), key=lambda item: item[0]):
        list_amount = unit * quantity
        amount = (list_amount * (100 - discount) / 100).quantize(CENT, ROUND_HALF_UP)
        lines.append(InvoiceLine(kind, edition, period, unit, discount, quantity, list_amount.quantize(CENT), amount))
    return tuple(lines)


def next_standing(statement: MonthStatement, program: Program) -> Standing:
    """Where the month after `statement` begins: its tier is set by this month's turnover (§10);
    a month ending under its tier's minimum lowers it (§17: to the tier reached, or one step)."""
    reached = program.qualifying_tier(statement.turnover)
    tier = reached
    if reached < statement.closing_tier and program.lowering == "one_step":
        tier = max(reached, statement.closing_tier - 1)
    under = statement.turnover < program.minimum_turnover
    months_under = statement.opening.months_under + 1 if under else 0
    return Standing(tier, months_under, months_under >= program.months_under_to_lose)


def first_standing(program: Program) -> Standing:
    """The first month of the ledger has no month before it: it opens at `first_month_tier`."""
    return Standing(program.first_month_tier)


def next_tier_gap(statement: MonthStatement, program: Program) -> tuple[int, Decimal] | None:
    """(tier, amount of turnover still missing) for the tier above the month's current one, if any."""
    if statement.opening.lost or statement.closing_tier + 1 >= len(program.tiers):
        return None
    tier = statement.closing_tier + 1
    return tier, max(Decimal(0), program.tiers[tier].min_turnover - statement.turnover)


def due_date(month: Month, program: Program) -> date:
    """The invoice for `month` is issued when it ends (post-payment, §5) and due `due_days` after its last day."""
    return month.end - timedelta(days=1) + timedelta(days=program.due_days)


def unpaid_block(
    invoices: list[tuple[Month, Decimal]], payments: list[tuple[str, str]], today: date, program: Program
) -> str | None:
    """Why orders and renewals are blocked (§18), or None: payments cover invoices oldest first."""
    if not program.track_payments:
        return None
    paid = sum((Decimal(amount) for on, amount in payments if on <= today.isoformat()), Decimal(0))
    for month, total in sorted(invoices):
        paid -= total
        if paid < 0 and due_date(month, program) < today:
            return (
                f"the invoice for {month} ({total:.2f} {program.currency}) was due on {due_date(month, program)} and is "
                f"not paid ({-paid:.2f} {program.currency} open): the account refuses new orders and renewals (§18); "
                "pay it, then record the payment (`ispagent ledger import`)"
            )
    return None


def marketing_plan_reminder(today: date, program: Program) -> str | None:
    """§14: in December (and `remind_days_before` days before it), the annual marketing plan is due 1-15 December."""
    window_start = date(today.year, 12, 1)
    due = date(today.year, 12, 15)
    if window_start - timedelta(days=program.remind_days_before) <= today <= due:
        when = "now" if today >= window_start else f"from {window_start}"
        return (
            f"annual marketing plan for {today.year + 1} due between 1 and 15 December (§14): "
            f"send it to ISPsystem {when}, by {due}"
        )
    if today.month == 12:
        return (
            f"annual marketing plan for {today.year + 1} was due by {due} (§14): send it to ISPsystem if you have not"
        )
    return None
