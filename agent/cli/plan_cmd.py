"""`ispagent plan`: per host, what a rollout would do to licenses and what it would cost (agent/licensing/fleet.py)."""

from __future__ import annotations

import click

from agent.cli.options import fleet_options
from agent.cli.output import echo, echo_json


@click.command()
@fleet_options
@click.option("--json", "as_json", is_flag=True)
def plan(inventory, limit, as_json) -> None:
    """Show, per host, whether a license would be adopted, reused or ordered, before any money is spent.

    Uses the inventory addresses as the servers' IPs and does not connect to them
    (`ispagent run --dry-run` also reads each server's current license). Each license to order is
    priced from the program file at the discount it would get today, tier raises included.
    Hosts of different partner accounts (or ledgers) are planned account by account; with
    --json, several accounts give {"accounts": [{"account": ..., "hosts": ..., ...}]}.
    """
    from agent.rollout import Rollout

    with Rollout.from_inventory(inventory, limit) as rollout:
        fleets = [(group, rollout.plan(group)) for group in rollout.groups]
    if as_json:
        if len(fleets) == 1:
            return echo_json(_plan_json(fleets[0][1]))
        return echo_json(
            {"accounts": [{"account": group.account.describe(), **_plan_json(fleet)} for group, fleet in fleets]}
        )
    for group, fleet in fleets:
        if len(fleets) > 1:
            echo(f"== {group.account.describe()}: {len(group.hosts)} host(s)")
        _print_plan(fleet)


def _plan_json(fleet) -> dict:
    return {
        "hosts": [
            {
                "host": p.host_name,
                "ip": p.wanted.ip,
                "edition": p.wanted.edition,
                "period": p.wanted.period,
                "action": p.action,
                "license_id": p.license_id,
                "reason": p.reason,
                **(
                    {
                        "list_price": float(p.price.list_price),
                        "discount": float(p.price.discount),
                        "price": float(p.price.price),
                    }
                    if p.price
                    else {}
                ),
            }
            for p in fleet.hosts
        ],
        "totals": [
            {"action": t.action, "edition": t.edition, "period": t.period, "hosts": t.hosts} for t in fleet.totals
        ],
        "money": _money_json(fleet),
    }


def _money_json(fleet) -> dict:
    quote, program = fleet.quote, fleet.program
    return {
        "currency": program.currency,
        "to_order": len(quote.orders),
        "list_total": float(quote.total_list),
        "total": float(quote.total),
        "turnover_before": float(quote.before.turnover),
        "turnover_after": float(quote.after.turnover),
        "tier_before": f"{quote.discount_before:g} %",
        "tier_after": f"{quote.discount_after:g} %",
        "raises": [{"on": r.on, "discount": float(program.tiers[r.tier].discount)} for r in quote.raises],
        "placeholder_prices": program.placeholder_prices,
        "blocked": quote.blocked,
    }


def _print_plan(fleet) -> None:
    quote, program, cur = fleet.quote, fleet.program, fleet.program.currency
    for p in fleet.hosts:
        q = p.price
        price = f"{q.list_price:>8.2f} {q.discount:>3g} % {q.price:>8.2f}" if q else f"{'-':>8} {'-':>5} {'-':>8}"
        echo(
            f"{p.host_name:<12} {p.wanted.ip:<16} {p.wanted.edition:<9} {p.wanted.period:<8} {p.action:<9} "
            f"{p.license_id or '-':<10} {price}  {p.reason}"
        )
    echo("totals:")
    for t in fleet.totals:
        echo(
            f"  {t.action:<9} {t.edition:<9} {t.period:<8} {t.hosts:>4}"
            + (f"  {t.price:>10.2f} {cur}" if t.price is not None else "")
        )
    echo(
        f"to order: {len(quote.orders)} license(s), {quote.total_list:.2f} {cur} at list price, "
        f"{quote.total:.2f} {cur} after discount (billed with this month's invoice, §5)"
    )
    echo(
        f"this month's turnover: {float(quote.before.turnover):.2f} -> {float(quote.after.turnover):.2f} {cur}; "
        f"tier {quote.discount_before:g} % -> {quote.discount_after:g} %"
    )
    if program.placeholder_prices:
        echo(f"warning: list prices in {program.source} are placeholders: enter your partner prices there")
    if quote.blocked:
        echo(f"blocked: {quote.blocked}")
