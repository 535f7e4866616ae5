"""`ispagent reconcile`: servers, the ledger and the partner account compared (agent/licensing/fleet.py)."""

from __future__ import annotations

from datetime import date

import click

from agent.cli.options import first_vars, fleet_options, inventory_hosts, ledger_of, partner_client
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
    bills a license the account no longer holds).
    """
    from agent.licensing.fleet import reconcile as compare
    from agent.licensing.fleet import wanted_licenses

    hosts = inventory_hosts(inventory, limit)
    vars = first_vars(hosts)
    wanted = wanted_licenses(hosts)
    account = partner_client(vars).list()
    findings = compare(wanted, account, ledger_of(vars), date.today().isoformat(), days)
    if as_json:
        return echo_json([f.__dict__ for f in findings])
    for f in findings:
        echo(f"{f.kind:<17} {f.host_name or '-':<12} {f.license_id or '-':<10} {f.detail}")
    echo(f"{len(findings)} finding(s) for {len(wanted)} host(s) and {len(account)} license(s) in the account")
