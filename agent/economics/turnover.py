"""The ledger read through the program's rules: a month's statement, the turnover report, the
forecast and the cost of a rollout before any money is spent.

Reads the ledger, then calls the pure rules of `agent/economics/rules.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from agent.economics.program import Program
from agent.economics.rules import (
    Applied,
    Charge,
    Month,
    MonthStatement,
    Standing,
    TierRaise,
    first_standing,
    marketing_plan_reminder,
    month_statement,
    next_standing,
    next_tier_gap,
    unpaid_block,
)
from agent.errors import InputError, LedgerError
from agent.ledger import ChargeRow, LicenseLedger

HISTORY_MONTHS = 12  # the chart's months


def month_charges(ledger: LicenseLedger, month: Month, program: Program, until: date | None = None) -> list[Charge]:
    """The month's charges: activations and recorded renewals, plus implied renewals (`renewals: implied`)."""
    start, end = month.start.isoformat(), month.end.isoformat()
    rows = ledger.billing.recorded_charges(start, end)
    if program.renewals == "implied":
        rows += ledger.billing.implied_renewals(start, end, month.days)
    limit = until.isoformat() if until else None
    return [_charge(row, program) for row in rows if limit is None or row.on_date <= limit]


def _charge(row: ChargeRow, program: Program) -> Charge:
    if row.price is not None:
        price = Decimal(row.price)
    else:
        try:
            price = program.price(row.edition, row.period)
        except KeyError:
            raise LedgerError(
                f"the ledger bills a '{row.edition} {row.period}' license on {row.on_date}, which "
                f"{program.source} has no list price for: add it under list_prices"
            ) from None
    return Charge(row.on_date, row.kind, row.edition, row.period, price, row.quantity)


def first_month(ledger: LicenseLedger) -> Month | None:
    first = ledger.billing.first_date()
    return Month.of(date.fromisoformat(first)) if first else None


def statements(
    ledger: LicenseLedger, program: Program, upto: Month, since: Month | None = None, until: date | None = None
) -> list[MonthStatement]:
    """Statements from `since` (default: `upto` alone) to `upto`, each opening where the one before
    left the partner. `until`: charges of `upto` only up to that day.
    """
    first = first_month(ledger) or upto
    start = max(first, since or upto)
    standing = _opening(ledger, program, start, first)
    result = []
    month = start
    while month <= upto:
        charges = month_charges(ledger, month, program, until if month == upto else None)
        statement = month_statement(month, charges, standing, program)
        result.append(statement)
        standing = next_standing(statement, program)
        month = month.shift(1)
    return result


def _opening(ledger: LicenseLedger, program: Program, month: Month, first: Month) -> Standing:
    """Where the partner stands when `month` begins.

    With `turnover_basis: list` and `lowering: qualifying` that is the tier the previous month's
    turnover reaches and the run of months under the minimum before it: months are read back only
    until one reaches the minimum (or the run is long enough to lose the status). The other choices
    make every month depend on all before it: the chain is computed from the ledger's first month.
    """
    if month <= first:
        return first_standing(program)
    if program.turnover_basis == "invoiced" or program.lowering == "one_step":
        standing = first_standing(program)
        back = first
        while back < month:
            standing = next_standing(
                month_statement(back, month_charges(ledger, back, program), standing, program), program
            )
            back = back.shift(1)
        return standing
    previous: Decimal | None = None
    months_under, back = 0, month.shift(-1)
    while back >= first and months_under < program.months_under_to_lose:
        turnover = month_statement(
            back, month_charges(ledger, back, program), first_standing(program), program
        ).turnover
        previous = turnover if previous is None else previous
        if turnover >= program.minimum_turnover:
            break
        months_under += 1
        back = back.shift(-1)
    tier = program.qualifying_tier(previous if previous is not None else Decimal(0))
    return Standing(tier, months_under, months_under >= program.months_under_to_lose)


@dataclass(frozen=True)
class TurnoverReport:
    month: Month
    today: date
    program: Program
    statement: MonthStatement  # charged so far (the whole month once it is over)
    expected: MonthStatement | None  # the current month to its end (implied renewals still to come)
    months_under: int  # complete months in a row under the minimum, this one included once it is over
    active_licenses: int
    history: list[tuple[Month, Decimal]] = field(default_factory=list)
    blocked: str | None = None
    reminder: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.month.end <= self.today

    @property
    def tier_now(self) -> int:
        return self.statement.closing_tier

    @property
    def status_lost(self) -> bool:
        """Reseller status lost (§10): the month opened lost, or has now made the run of months under long enough."""
        return self.statement.opening.lost or self.months_under >= self.program.months_under_to_lose

    def next_tier(self) -> tuple[int, Decimal] | None:
        return next_tier_gap(self.statement, self.program)


def turnover_report(
    ledger: LicenseLedger, program: Program, today: date, month: Month | None = None, history: bool = False
) -> TurnoverReport:
    """Where the partner stands in `month` (default: this month) as of `today`."""
    current = Month.of(today)
    month = month or current
    if month > current:
        raise InputError(f"--month {month}: that month has not begun (today is {today}); ask for {current} or earlier")
    first = first_month(ledger)
    if first is not None and month < first:
        raise InputError(
            f"--month {month}: the ledger starts in {first}; ask for {first} or later, "
            "or import older history with `ispagent ledger import FILE.csv`"
        )
    until = today if month == current else None
    chain = statements(
        ledger, program, month, since=month.shift(-(HISTORY_MONTHS - 1)) if history else None, until=until
    )
    statement = chain[-1]
    expected = None
    if until is not None:
        full = month_charges(ledger, month, program)
        expected = month_statement(month, full, statement.opening, program)
    months_under = statement.opening.months_under
    if month.end <= today:
        months_under = next_standing(statement, program).months_under
    on = min(today, month.end - timedelta(days=1))
    report = TurnoverReport(
        month=month,
        today=today,
        program=program,
        statement=statement,
        expected=expected,
        months_under=months_under,
        active_licenses=ledger.billing.active_licenses(on.isoformat()),
        history=[(s.month, s.turnover) for s in chain[-HISTORY_MONTHS:]] if history else [],
        blocked=blocked_by_unpaid(ledger, program, today),
        reminder=marketing_plan_reminder(today, program),
    )
    report.warnings.extend(_warnings(report))
    return report


def _warnings(report: TurnoverReport) -> list[str]:
    program, warnings = report.program, []
    lose = program.months_under_to_lose
    if report.status_lost:
        warnings.append(
            f"{report.months_under} months in a row under the minimum turnover of {program.minimum_turnover:g} "
            f"{program.currency}: reseller status lost (§10); discount now {program.discount_after_status_lost:g} %"
        )
    elif report.months_under >= lose - 2:
        warnings.append(
            f"{report.months_under} of {lose} months in a row under the minimum turnover of "
            f"{program.minimum_turnover:g} {program.currency}: {lose - report.months_under} more and the "
            "reseller status is lost (§10)"
        )
    if program.placeholder_prices:
        warnings.append(
            f"list prices in {program.source} are placeholders: enter your partner prices there and set "
            "list_prices.placeholder: false"
        )
    return warnings


def blocked_by_unpaid(ledger: LicenseLedger, program: Program, today: date) -> str | None:
    """Why the account will refuse orders and renewals (an unpaid invoice past due, §18), if payments are tracked."""
    if not program.track_payments:
        return None
    last = Month.of(today).shift(-1)
    first = first_month(ledger)
    if first is None or first > last:
        return None
    chain = statements(ledger, program, last, since=first)
    invoices = [(s.month, s.invoice_total) for s in chain]
    return unpaid_block(invoices, ledger.billing.payments_until(today.isoformat()), today, program)


# -- money before spending -------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderQuote:
    edition: str
    period: str
    list_price: Decimal
    discount: Decimal
    price: Decimal  # after discount


@dataclass(frozen=True)
class RolloutQuote:
    """What ordering `orders` today costs, and how it moves this month's tier."""

    orders: tuple[OrderQuote, ...]
    before: MonthStatement
    after: MonthStatement
    blocked: str | None
    discount_before: Decimal  # percent, at the month's tier now
    discount_after: Decimal  # percent, once the orders are charged

    @property
    def total_list(self) -> Decimal:
        return sum((o.list_price for o in self.orders), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.after.invoice_total - self.before.invoice_total

    @property
    def raises(self) -> tuple[TierRaise, ...]:
        """The tier raises the orders bring."""
        return tuple(r for r in self.after.raises if r not in self.before.raises)


@dataclass(frozen=True)
class MonthSoFar:
    """This month's billing up to today, as the ledger holds it: what a quote prices orders on top of."""

    month: Month
    statement: MonthStatement
    charged: tuple[Charge, ...]
    blocked: str | None
    today: date


def month_so_far(ledger: LicenseLedger, program: Program, today: date) -> MonthSoFar:
    """Read this month's billing up to `today`: the statements of the months before it (the tier history)
    and this month's charges. The ledger's whole history is read: read it once for many quotes."""
    month = Month.of(today)
    return MonthSoFar(
        month,
        statements(ledger, program, month, until=today)[-1],
        tuple(month_charges(ledger, month, program, until=today)),
        blocked_by_unpaid(ledger, program, today),
        today,
    )


def quote_orders(program: Program, so_far: MonthSoFar, orders: list[tuple[str, str]]) -> RolloutQuote:
    """Price each order (edition, period) as the next charge of the month `so_far`, in order, tier raises included."""
    new = [
        Charge(so_far.today.isoformat(), "activation", edition, period, _price(program, edition, period))
        for edition, period in orders
    ]
    before = so_far.statement
    after = month_statement(so_far.month, [*so_far.charged, *new], before.opening, program)
    mine: list[Applied] = list(after.applied[len(after.applied) - len(new) :]) if new else []
    quotes = tuple(
        OrderQuote(
            a.charge.edition,
            a.charge.period,
            a.charge.unit_price,
            a.discount,
            (a.charge.unit_price * (100 - a.discount) / 100).quantize(Decimal("0.01")),
        )
        for a in mine
    )
    return RolloutQuote(
        quotes,
        before,
        after,
        so_far.blocked,
        program.discount(before.closing_tier, before.opening.lost),
        program.discount(after.closing_tier, after.opening.lost),
    )


def quote_rollout(ledger: LicenseLedger, program: Program, orders: list[tuple[str, str]], today: date) -> RolloutQuote:
    """Price each order (edition, period) as the next charge of this month, in order, tier raises included."""
    return quote_orders(program, month_so_far(ledger, program, today), orders)


def _price(program: Program, edition: str, period: str) -> Decimal:
    try:
        return program.price(edition, period)
    except KeyError:
        raise InputError(f"{program.source}: no list price for {edition} {period}; add it under list_prices") from None


# -- forecast --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastMonth:
    month: Month
    renewals: int
    activations: int
    turnover: Decimal
    opening_tier: int
    closing_tier: int
    discount: Decimal  # at the month's opening
    invoice: Decimal
    active_licenses: int
    months_under: int


def forecast(
    ledger: LicenseLedger,
    program: Program,
    today: date,
    months: int,
    rate: int | None = None,
    edition: str = "lite",
    period: str = "monthly",
) -> tuple[int, list[ForecastMonth]]:
    """Project the next `months` months from the licenses running today plus `rate` new ones a month.

    Assumes no license is deactivated; `rate` defaults to the mean of the last 3 complete months'
    activations. Returns (rate used, months).
    """
    current = Month.of(today)
    if rate is None:
        rate = _recent_rate(ledger, current)
    price = _price(program, edition, period)
    running = ledger.billing.open_terms(today.isoformat())
    this_month = month_statement(
        current, month_charges(ledger, current, program), statements(ledger, program, current)[-1].opening, program
    )
    standing = next_standing(this_month, program)
    planned: list[tuple[date, int]] = []  # (day of activation, count) of the forecast's own activations
    active = sum(t.count for t in running)
    result = []
    for step in range(1, months + 1):
        month = current.shift(step)
        charges = [
            _renewal(month, t.started_on, t.edition, t.period, program.price(t.edition, t.period), t.count)
            for t in running
            if _renews_in(t.started_on, t.period, month)
        ]
        charges += [
            _renewal(month, started.isoformat(), edition, period, price, count)
            for started, count in planned
            if _renews_in(started.isoformat(), period, month)
        ]
        activation_day = month.start + timedelta(days=min(14, month.days - 1))  # mid-month, on average
        if rate:
            charges.append(Charge(activation_day.isoformat(), "activation", edition, period, price, rate))
            planned.append((activation_day, rate))
        statement = month_statement(month, charges, standing, program)
        active += rate
        result.append(
            ForecastMonth(
                month,
                sum(c.quantity for c in charges if c.kind == "renewal"),
                rate,
                statement.turnover,
                standing.tier,
                statement.closing_tier,
                program.discount(standing.tier, standing.lost),
                statement.invoice_total,
                active,
                standing.months_under,
            )
        )
        standing = next_standing(statement, program)
    return rate, result


def _renews_in(started_on: str, period: str, month: Month) -> bool:
    started = date.fromisoformat(started_on)
    if Month.of(started) >= month:
        return False
    return period == "monthly" or started.month == month.month


def _renewal(month: Month, started_on: str, edition: str, period: str, price: Decimal, count: int) -> Charge:
    day = min(int(started_on[8:10]), month.days)
    return Charge(f"{month}-{day:02d}", "renewal", edition, period, price, count)


def _recent_rate(ledger: LicenseLedger, current: Month) -> int:
    total = 0
    for back in (1, 2, 3):
        month = current.shift(-back)
        rows = ledger.billing.recorded_charges(month.start.isoformat(), month.end.isoformat())
        total += sum(r.quantity for r in rows if r.kind == "activation")
    return round(total / 3)
