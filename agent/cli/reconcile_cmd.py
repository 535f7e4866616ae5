"""`ispagent reconcile`: servers, the ledger and the partner account compared (agent/licensing/fleet.py)."""

from __future__ import annotations

import click

from agent.cli.options import fleet_options
from agent.cli.output import echo, echo_json


@click.command()
@fleet_options
@click.option("--days", type=int, default=30, show_default=True, help="Report licenses expiring within this many days.")
@click.option("--json", "as_json", is_flag=True)
def reconcile(inventory, limit, days, as_json) -> None:
    """Compare servers, the ledger and the partner account.

    The servers' IPs are the inventory addresses; findings: missing, orphaned, ip-mismatch,
    edition-mismatch, expiring, unconfirmed (activations the account has not confirmed), and for the
    turnover: unbilled (an account license the ledger bills nothing for) and billed-gone (the ledger
    bills a license the account no longer holds). Hosts of different partner accounts (or ledgers)
    are compared account by account; with --json each finding then names its account.
    """
    from agent.rollout import Rollout

    with Rollout.from_inventory(inventory, limit) as rollout:
        results = [
            (group, rollout.reconcile(group, days), len(rollout.view(group).licenses())) for group in rollout.groups
        ]
    several = len(results) > 1
    if as_json:
        return echo_json(
            [
                {**f.__dict__, **({"account": group.account.describe()} if several else {})}
                for group, findings, _ in results
                for f in findings
            ]
        )
    for group, findings, licenses in results:
        if several:
            echo(f"== {group.account.describe()}: {len(group.hosts)} host(s)")
        for f in findings:
            echo(f"{f.kind:<17} {f.host_name or '-':<12} {f.license_id or '-':<10} {f.detail}")
        echo(f"{len(findings)} finding(s) for {len(group.hosts)} host(s) and {licenses} license(s) in the account")
