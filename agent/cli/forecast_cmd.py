"""`ispagent forecast`: turnover, tier and invoice of the months ahead (agent/economics/turnover.py)."""

from __future__ import annotations

import click

from agent.cli.options import economics_context, economics_options, money
from agent.cli.output import echo, echo_json
from agent.editions import EDITIONS, PERIODS
from agent.errors import InputError
from agent.secrets import shown


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

    ledger, program, day = economics_context(inventory, ledger_at, program_file, today)
    used, rows = project(ledger, program, day, months, _rate(rate), edition, period)
    if as_json:
        return echo_json(
            {
                "rate": used,
                "edition": edition,
                "period": period,
                "months": [
                    {
                        "month": str(r.month),
                        "renewals": r.renewals,
                        "activations": r.activations,
                        "turnover": float(r.turnover),
                        "discount": float(r.discount),
                        "tier_at_start": r.opening_tier + 1 if r.opening_tier >= 0 else None,
                        "tier_at_end": r.closing_tier + 1 if r.closing_tier >= 0 else None,
                        "invoice": float(r.invoice),
                        "active_licenses": r.active_licenses,
                    }
                    for r in rows
                ],
            }
        )
    echo(
        f"forecast from {day}: {used} new {edition} {period} license(s) a month, no deactivations ({program.turnover_basis} prices)"
    )
    echo(f"{'MONTH':<8} {'RENEW':>6} {'NEW':>5} {'TURNOVER':>11} {'DISC':>5} {'INVOICE':>11} {'ACTIVE':>7}")
    for r in rows:
        echo(
            f"{str(r.month):<8} {r.renewals:>6} {r.activations:>5} {money(r.turnover):>11} {r.discount:>3g} % "
            f"{money(r.invoice):>11} {r.active_licenses:>7}"
        )
    if rows:
        echo(
            f"planned monthly turnover (§13): {money(sum(r.turnover for r in rows) / len(rows))} {program.currency} on average"
        )


def _rate(text: str | None) -> int | None:
    if text is None:
        return None
    number = text.strip().removesuffix("/month")
    if not number.isdigit():
        raise InputError(f"--rate {shown(text)}: write a whole number of licenses a month, e.g. --rate 20")
    return int(number)
