"""`ispagent licenses ...`: the licenses of the partner account from the shell (agent/licensing/account.py)."""

from __future__ import annotations


import click

from agent.cli.options import ledger_of, partner_client, partner_options, partner_vars
from agent.cli.output import echo, echo_json
from agent.editions import EDITIONS, PERIODS


def _license_json(lic) -> dict:
    return {"id": lic.id, "edition": lic.edition, "pricelist": lic.pricelist, "status": lic.status.name.lower(),
            "ip": lic.ip, "licname": lic.licname, "remoteid": lic.remoteid, "expiredate": lic.expiredate}


@click.group()
def licenses() -> None:
    """Licenses in the partner account: list, show, renew, change IP, suspend, resume, delete."""


@licenses.command("list")
@partner_options
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_licenses(as_json, **options) -> None:
    """Every license of the account (activation keys are never shown)."""
    found = partner_client(partner_vars(**options)).list()
    if as_json:
        return echo_json([_license_json(lic) for lic in found])
    echo(f"{'ID':<10} {'EDITION':<9} {'STATUS':<10} {'IP':<16} {'EXPIRES':<11} NAME")
    for lic in found:
        echo(f"{lic.id:<10} {lic.edition or lic.pricelist:<9} {lic.status.name.lower():<10} {lic.ip:<16} {lic.expiredate:<11} {lic.licname}")


@licenses.command()
@click.argument("license_id")
@partner_options
@click.option("--json", "as_json", is_flag=True)
def show(license_id, as_json, **options) -> None:
    """One license (its activation key is not shown)."""
    lic = partner_client(partner_vars(**options)).get(license_id)
    data = {**_license_json(lic), "has_key": bool(lic.key)}
    echo_json(data) if as_json else echo("\n".join(f"{k}: {v}" for k, v in data.items()))


@licenses.command()
@click.argument("license_id")
@click.option("--period", type=click.Choice(PERIODS), required=True)
@partner_options
def renew(license_id, period, **options) -> None:
    """Prolong a license (paid from the account balance); the ledger bills the renewal."""
    from agent.licensing import account

    vars = partner_vars(**options)
    until = account.renew(partner_client(vars), ledger_of(vars), license_id, period)
    echo(f"license {license_id} renewed until {until}")


@licenses.command("change-ip")
@click.argument("license_id")
@click.argument("ip")
@partner_options
def change_ip(license_id, ip, **options) -> None:
    """Move a license to another server IP (the account may allow this once a month)."""
    from agent.licensing import account

    account.change_ip(partner_client(partner_vars(**options)), license_id, ip)
    echo(f"license {license_id} moved to {ip}")


@licenses.command("change-tariff")
@click.argument("license_id")
@click.argument("edition", type=click.Choice(EDITIONS))
@click.option("--period", type=click.Choice(PERIODS), default="monthly", show_default=True)
@partner_options
def change_tariff(license_id, edition, period, **options) -> None:
    """Switch a license to another edition."""
    from agent.licensing import account

    account.change_tariff(partner_client(partner_vars(**options)), license_id, edition, period)
    echo(f"license {license_id} is now {edition}")


@licenses.command(help="Suspend a license.")
@click.argument("license_id")
@partner_options
def suspend(license_id, **options) -> None:
    from agent.licensing import account

    account.suspend(partner_client(partner_vars(**options)), license_id)
    echo(f"license {license_id} suspended")


@licenses.command(help="Resume a license.")
@click.argument("license_id")
@partner_options
def resume(license_id, **options) -> None:
    from agent.licensing import account

    account.resume(partner_client(partner_vars(**options)), license_id)
    echo(f"license {license_id} resumed")


@licenses.command(help="Delete a license.")
@click.argument("license_id")
@partner_options
@click.option("--yes", is_flag=True, help="Do not ask.")
def delete(license_id, yes, **options) -> None:
    from agent.licensing import account

    if not yes:
        click.confirm(f"Delete license {license_id}? This cannot be undone", abort=True)
    vars = partner_vars(**options)
    account.delete(partner_client(vars), ledger_of(vars), license_id)
    echo(f"license {license_id} deleted")
