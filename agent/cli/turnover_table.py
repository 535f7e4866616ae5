"""`ispagent turnover`'s table: the report as an operator reads it."""

from __future__ import annotations

from agent.cli.options import money
from agent.cli.output import echo


def _tier_text(program, tier: int, lost: bool = False) -> str:
    if lost:
        return f"status lost ({program.discount_after_status_lost:g} %)"
    if tier < 0:
        return f"under the first tier ({program.discount_under_minimum:g} %)"
    return f"{program.tiers[tier].discount:g} % (from {program.tiers[tier].min_turnover:g})"


def print_report(report, ledger_shown: str) -> None:
    s, program, cur = report.statement, report.program, report.program.currency
    when = "complete" if report.complete else f"so far, as of {report.today}"
    echo(f"ISPmanager 6 turnover {report.month} ({when}); ledger {ledger_shown}")
    if s.lines:
        echo(
            f"  {'KIND':<11} {'EDITION':<9} {'PERIOD':<8} {'QTY':>5} {'UNIT':>9} {'LIST':>11} {'DISC':>5} {'AMOUNT':>11}"
        )
        for l in s.lines:
            echo(
                f"  {l.kind:<11} {l.edition:<9} {l.period:<8} {l.quantity:>5} {money(l.unit_price):>9} "
                f"{money(l.list_amount):>11} {l.discount:>3g} % {money(l.amount):>11}"
            )
    else:
        echo("  no activations or renewals")
    echo(f"turnover ({program.turnover_basis} prices): {money(s.turnover)} {cur}")
    echo(
        f"at list price {money(s.list_total)} {cur}, discounts {money(s.discount_total)} {cur}, "
        f"invoice total {money(s.invoice_total)} {cur}"
    )
    if report.expected is not None and report.expected.turnover != s.turnover:
        echo(
            f"expected by the end of the month (renewals still to come): turnover {money(report.expected.turnover)} {cur}, "
            f"invoice {money(report.expected.invoice_total)} {cur}"
        )
    echo(f"tier at the start of the month: {_tier_text(program, s.opening.tier, s.opening.lost)}")
    for r in s.raises:
        echo(f"  raised on {r.on} to {_tier_text(program, r.tier)} at {money(r.turnover)} {cur}")
    echo(f"tier now: {_tier_text(program, s.closing_tier, s.opening.lost)}")
    gap = report.next_tier()
    if gap:
        echo(f"next tier {_tier_text(program, gap[0])}: {money(gap[1])} {cur} more turnover")
    echo(
        f"months in a row under the {program.minimum_turnover:g} {cur} minimum: {report.months_under} of {program.months_under_to_lose}"
    )
    need = program.marketing_support_from - report.active_licenses
    support = "marketing support: yes (§6)" if need <= 0 else f"{need} more for marketing support (§6)"
    echo(f"active licenses: {report.active_licenses} of {program.marketing_support_from}: {support}")
    for warning in report.warnings:
        echo(f"warning: {warning}")
    if report.blocked:
        echo(f"blocked: {report.blocked}")
    if report.reminder:
        echo(f"reminder: {report.reminder}")
