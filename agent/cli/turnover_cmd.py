"""`ispagent turnover`: the month's charges, turnover, invoice and standing (agent/economics/turnover.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from agent.cli.options import economics_context, economics_options
from agent.cli.output import echo, echo_json


@click.command()
@click.option("--month", metavar="YYYY-MM", help="The month to show (default: this month, so far).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the last 12 months against the tiers (.png or .svg).",
)
@economics_options
def turnover(month, fmt, chart, inventory, ledger_at, program_file, today) -> None:
    """The month's activations and renewals, turnover, discounts, invoice and standing in the program.

    \b
    Shows the tier now and what the next tier needs, months in a row under the minimum turnover
    (warnings at 4 and 5 of 6), active licenses against the 50 for marketing support, an unpaid
    invoice that blocks orders, and in December the marketing plan reminder.
    """
    from agent.cli.turnover_table import print_report
    from agent.economics.chart import draw_turnover_chart
    from agent.economics.rules import Month
    from agent.economics.turnover import turnover_report

    ledger, program, day = economics_context(inventory, ledger_at, program_file, today)
    report = turnover_report(ledger, program, day, Month.parse(month) if month else None, history=bool(chart))
    if chart:
        draw_turnover_chart(report.history, program, chart, None if report.complete else report.month)
    if fmt == "json":
        echo_json(_report_json(report))
    elif fmt == "csv":
        echo(_report_csv(report).rstrip("\n"))
    else:
        print_report(report, ledger.shown)
    if chart:
        echo(f"chart: {chart}", err=fmt != "table")


def _tier_json(program, tier: int, lost: bool = False) -> dict:
    if tier < 0:
        return {"tier": None, "discount": float(program.discount(tier, lost)), "min_turnover": None}
    return {
        "tier": tier + 1,
        "discount": float(program.discount(tier, lost)),
        "min_turnover": float(program.tiers[tier].min_turnover),
    }


def _report_json(report) -> dict:
    s, program = report.statement, report.program
    gap = report.next_tier()
    return {
        "month": str(report.month),
        "as_of": report.today.isoformat(),
        "complete": report.complete,
        "currency": program.currency,
        "lines": [
            {
                "kind": l.kind,
                "edition": l.edition,
                "period": l.period,
                "quantity": l.quantity,
                "unit_price": float(l.unit_price),
                "discount": float(l.discount),
                "list_amount": float(l.list_amount),
                "amount": float(l.amount),
            }
            for l in s.lines
        ],
        "turnover": float(s.turnover),
        "turnover_basis": program.turnover_basis,
        "list_total": float(s.list_total),
        "discount_total": float(s.discount_total),
        "invoice_total": float(s.invoice_total),
        "expected": None
        if report.expected is None
        else {"turnover": float(report.expected.turnover), "invoice_total": float(report.expected.invoice_total)},
        "tier_at_start": _tier_json(program, s.opening.tier, s.opening.lost),
        "tier_now": _tier_json(program, s.closing_tier, s.opening.lost),
        "raises": [{"on": r.on, "tier": r.tier + 1, "turnover": float(r.turnover)} for r in s.raises],
        "next_tier": None if gap is None else {**_tier_json(program, gap[0]), "missing": float(gap[1])},
        "months_under_minimum": report.months_under,
        "months_under_to_lose": program.months_under_to_lose,
        "status_lost": report.status_lost,
        "active_licenses": report.active_licenses,
        "marketing_support_from": program.marketing_support_from,
        "blocked": report.blocked,
        "reminder": report.reminder,
        "warnings": report.warnings,
    }


def _report_csv(report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["month", "kind", "edition", "period", "quantity", "unit_price", "discount", "list_amount", "amount"]
    )
    for l in report.statement.lines:
        writer.writerow(
            [
                report.month,
                l.kind,
                l.edition,
                l.period,
                l.quantity,
                f"{l.unit_price:.2f}",
                f"{l.discount:g}",
                f"{l.list_amount:.2f}",
                f"{l.amount:.2f}",
            ]
        )
    s = report.statement
    writer.writerow(
        [
            report.month,
            "total",
            "",
            "",
            sum(l.quantity for l in s.lines),
            "",
            "",
            f"{s.list_total:.2f}",
            f"{s.invoice_total:.2f}",
        ]
    )
    return out.getvalue()
