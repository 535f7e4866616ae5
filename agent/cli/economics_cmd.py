"""`ispagent turnover`, `ispagent forecast`, `ispagent ledger import|export`: partner economics from the shell.

The ledger and the program file come from options, else an inventory's vars (-i: ledger_url,
ledger_path, program_file), else the environment ($ISPAGENT_LEDGER_URL, $ISPAGENT_LEDGER,
$ISPAGENT_PROGRAM), else the defaults.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date
from pathlib import Path

import click

from agent.editions import EDITIONS, PERIODS
from agent.secrets import mask

_COMMON = [
    click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path), help="Take ledger_url / ledger_path / program_file from this inventory's vars."),
    click.option("--ledger", "ledger_at", metavar="PATH|URL", help="The ledger: a SQLite file or postgresql+psycopg://… URL."),
    click.option("--program", "program_file", type=click.Path(dir_okay=False, path_type=Path), help="Program rules file (default: the shipped agent/program.yaml)."),
    click.option("--today", metavar="YYYY-MM-DD", hidden=True, help="Pretend today is this day (tests)."),
]


def economics_options(function):
    for option in reversed(_COMMON):
        function = option(function)
    return function


def _echo(text: str = "") -> None:
    click.echo(mask(text))


def _vars(inventory: Path | None) -> dict:
    if not inventory:
        return {}
    from agent.inventory.loader import load_inventory

    hosts = load_inventory(inventory).select(None)
    return dict(hosts[0].vars) if hosts else {}


def _context(inventory, ledger_at, program_file, today):
    from agent.economics.program import load_program, program_location
    from agent.errors import InputError
    from agent.ledger import ledger_location, open_ledger

    vars = _vars(inventory)
    program = load_program(program_location(vars, program_file))
    ledger = open_ledger(ledger_at or ledger_location(vars))
    try:
        day = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise InputError(f"--today '{today}': write YYYY-MM-DD") from None
    return ledger, program, day


def _money(value) -> str:
    return f"{value:,.2f}"


@click.command()
@click.option("--month", metavar="YYYY-MM", help="The month to show (default: this month, so far).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="Also draw the last 12 months against the tiers (.png or .svg).")
@economics_options
def turnover(month, fmt, chart, inventory, ledger_at, program_file, today) -> None:
    """The month's activations and renewals, turnover, discounts, invoice and standing in the program.

    \b
    Shows the tier now and what the next tier needs, months in a row under the minimum turnover
    (warnings at 4 and 5 of 6), active licenses against the 50 for marketing support, an unpaid
    invoice that blocks orders, and in December the marketing plan reminder.
    """
    from agent.economics.chart import draw_turnover_chart
    from agent.economics.rules import Month
    from agent.economics.turnover import turnover_report

    ledger, program, day = _context(inventory, ledger_at, program_file, today)
    report = turnover_report(ledger, program, day, Month.parse(month) if month else None, history=bool(chart))
    if chart:
        draw_turnover_chart(report.history, program, chart, None if report.complete else report.month)
    if fmt == "json":
        _echo(json.dumps(_report_json(report), indent=2))
    elif fmt == "csv":
        _echo(_report_csv(report).rstrip("\n"))
    else:
        _print_report(report, ledger.shown)
    if chart:
        click.echo(f"chart: {chart}", err=fmt != "table")


def _tier_json(program, tier: int, lost: bool = False) -> dict:
    if tier < 0:
        return {"tier": None, "discount": float(program.discount(tier, lost)), "min_turnover": None}
    return {"tier": tier + 1, "discount": float(program.discount(tier, lost)), "min_turnover": float(program.tiers[tier].min_turnover)}


def _report_json(report) -> dict:
    s, program = report.statement, report.program
    gap = report.next_tier()
    return {
        "month": str(report.month), "as_of": report.today.isoformat(), "complete": report.complete, "currency": program.currency,
        "lines": [{"kind": l.kind, "edition": l.edition, "period": l.period, "quantity": l.quantity,
                   "unit_price": float(l.unit_price), "discount": float(l.discount), "list_amount": float(l.list_amount),
                   "amount": float(l.amount)} for l in s.lines],
        "turnover": float(s.turnover), "turnover_basis": program.turnover_basis, "list_total": float(s.list_total),
        "discount_total": float(s.discount_total), "invoice_total": float(s.invoice_total),
        "expected": None if report.expected is None else {
            "turnover": float(report.expected.turnover), "invoice_total": float(report.expected.invoice_total)},
        "tier_at_start": _tier_json(program, s.opening.tier, s.opening.lost),
        "tier_now": _tier_json(program, s.closing_tier, s.opening.lost),
        "raises": [{"on": r.on, "tier": r.tier + 1, "turnover": float(r.turnover)} for r in s.raises],
        "next_tier": None if gap is None else {**_tier_json(program, gap[0]), "missing": float(gap[1])},
        "months_under_minimum": report.months_under, "months_under_to_lose": program.months_under_to_lose,
        "status_lost": s.opening.lost or report.months_under >= program.months_under_to_lose,
        "active_licenses": report.active_licenses, "marketing_support_from": program.marketing_support_from,
        "blocked": report.blocked, "reminder": report.reminder, "warnings": report.warnings,
    }


def _report_csv(report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", "kind", "edition", "period", "quantity", "unit_price", "discount", "list_amount", "amount"])
    for l in report.statement.lines:
        writer.writerow([report.month, l.kind, l.edition, l.period, l.quantity, f"{l.unit_price:.2f}", f"{l.discount:g}",
                         f"{l.list_amount:.2f}", f"{l.amount:.2f}"])
    s = report.statement
    writer.writerow([report.month, "total", "", "", sum(l.quantity for l in s.lines), "", "", f"{s.list_total:.2f}",
                     f"{s.invoice_total:.2f}"])
    return out.getvalue()


def _tier_text(program, tier: int, lost: bool = False) -> str:
    if lost:
        return f"status lost ({program.discount_after_status_lost:g} %)"
    if tier < 0:
        return f"under the first tier ({program.discount_under_minimum:g} %)"
    return f"{program.tiers[tier].discount:g} % (from {program.tiers[tier].min_turnover:g})"


def _print_report(report, ledger_shown: str) -> None:
    s, program, cur = report.statement, report.program, report.program.currency
    when = "complete" if report.complete else f"so far, as of {report.today}"
    _echo(f"ISPmanager 6 turnover {report.month} ({when}); ledger {ledger_shown}")
    if s.lines:
        _echo(f"  {'KIND':<11} {'EDITION':<9} {'PERIOD':<8} {'QTY':>5} {'UNIT':>9} {'LIST':>11} {'DISC':>5} {'AMOUNT':>11}")
        for l in s.lines:
            _echo(f"  {l.kind:<11} {l.edition:<9} {l.period:<8} {l.quantity:>5} {_money(l.unit_price):>9} "
                  f"{_money(l.list_amount):>11} {l.discount:>3g} % {_money(l.amount):>11}")
    else:
        _echo("  no activations or renewals")
    _echo(f"turnover ({program.turnover_basis} prices): {_money(s.turnover)} {cur}")
    _echo(f"at list price {_money(s.list_total)} {cur}, discounts {_money(s.discount_total)} {cur}, "
          f"invoice total {_money(s.invoice_total)} {cur}")
    if report.expected is not None and report.expected.turnover != s.turnover:
        _echo(f"expected by the end of the month (renewals still to come): turnover {_money(report.expected.turnover)} {cur}, "
              f"invoice {_money(report.expected.invoice_total)} {cur}")
    _echo(f"tier at the start of the month: {_tier_text(program, s.opening.tier, s.opening.lost)}")
    for r in s.raises:
        _echo(f"  raised on {r.on} to {_tier_text(program, r.tier)} at {_money(r.turnover)} {cur}")
    _echo(f"tier now: {_tier_text(program, s.closing_tier, s.opening.lost)}")
    gap = report.next_tier()
    if gap:
        _echo(f"next tier {_tier_text(program, gap[0])}: {_money(gap[1])} {cur} more turnover")
    _echo(f"months in a row under the {program.minimum_turnover:g} {cur} minimum: {report.months_under} of {program.months_under_to_lose}")
    need = program.marketing_support_from - report.active_licenses
    support = "marketing support: yes (§6)" if need <= 0 else f"{need} more for marketing support (§6)"
    _echo(f"active licenses: {report.active_licenses} of {program.marketing_support_from}: {support}")
    for warning in report.warnings:
        _echo(f"warning: {warning}")
    if report.blocked:
        _echo(f"blocked: {report.blocked}")
    if report.reminder:
        _echo(f"reminder: {report.reminder}")


@click.command()
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@click.option("--rate", metavar="N/month", help="New licenses a month (default: the mean of the last 3 months).")
@click.option("--edition", type=click.Choice(EDITIONS), default="lite", show_default=True)
@click.option("--period", type=click.Choice(PERIODS), default="monthly", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@economics_options
def forecast(months, rate, edition, period, as_json, inventory, ledger_at, program_file, today) -> None:
    """Project monthly turnover, tier and invoice from the ledger and a planned rollout rate.

    The program's application asks for the planned monthly turnover (§13). Assumes no license is
    deactivated; renewals follow the running licenses, new ones arrive mid-month.
    """
    from agent.economics.turnover import forecast as project

    ledger, program, day = _context(inventory, ledger_at, program_file, today)
    used, rows = project(ledger, program, day, months, _rate(rate), edition, period)
    if as_json:
        return _echo(json.dumps({"rate": used, "edition": edition, "period": period, "months": [
            {"month": str(r.month), "renewals": r.renewals, "activations": r.activations, "turnover": float(r.turnover),
             "discount": float(r.discount), "tier_at_start": r.opening_tier + 1 if r.opening_tier >= 0 else None,
             "tier_at_end": r.closing_tier + 1 if r.closing_tier >= 0 else None, "invoice": float(r.invoice),
             "active_licenses": r.active_licenses} for r in rows]}, indent=2))
    cur = program.currency
    _echo(f"forecast from {day}: {used} new {edition} {period} license(s) a month, no deactivations ({program.turnover_basis} prices)")
    _echo(f"{'MONTH':<8} {'RENEW':>6} {'NEW':>5} {'TURNOVER':>11} {'DISC':>5} {'INVOICE':>11} {'ACTIVE':>7}")
    for r in rows:
        _echo(f"{str(r.month):<8} {r.renewals:>6} {r.activations:>5} {_money(r.turnover):>11} {r.discount:>3g} % "
              f"{_money(r.invoice):>11} {r.active_licenses:>7}")
    if rows:
        _echo(f"planned monthly turnover (§13): {_money(sum(r.turnover for r in rows) / len(rows))} {cur} on average")


def _rate(text: str | None) -> int | None:
    from agent.errors import InputError

    if text is None:
        return None
    number = text.strip().removesuffix("/month")
    if not number.isdigit():
        raise InputError(f"--rate '{text}': write a whole number of licenses a month, e.g. --rate 20")
    return int(number)


@click.group()
def ledger() -> None:
    """The ledger's billing history: import it from another billing system, export it."""


@ledger.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@economics_options
def import_csv(csv_file, inventory, ledger_at, program_file, today) -> None:
    """Import billing events from CSV (date,license_id,edition,period,kind,price): all rows or none.

    kind: activation, renewal, deactivation or payment; price: the list price in EUR if known (a
    payment: the amount paid). Every row is checked first; an error names its line.
    """
    from agent.economics.billing_csv import import_billing_csv

    ledger_, _, day = _context(inventory, ledger_at, program_file, today)
    count = import_billing_csv(ledger_, csv_file, day)
    _echo(f"imported {count} event(s) from {csv_file} into {ledger_.shown}")


@ledger.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@economics_options
def export_csv(output, inventory, ledger_at, program_file, today) -> None:
    """Write every billing event as CSV, in the format `ledger import` reads."""
    from agent.economics.billing_csv import write_billing_csv

    ledger_, _, _ = _context(inventory, ledger_at, program_file, today)
    if output is None:
        write_billing_csv(ledger_, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        count = write_billing_csv(ledger_, handle)
    click.echo(f"exported {count} event(s) to {output}", err=True)
