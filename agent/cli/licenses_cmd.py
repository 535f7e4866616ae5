"""`ispagent licenses ...`: the licenses of the partner account from the shell (agent/licensing/account.py).

A command's help is its operation's summary in agent/partner/operations.py where the two match; the
glue (settings, client, ledger, closing them) is written once, in `_account`; suspend and resume are
one command maker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from agent.cli.options import ledger_of, partner_client, partner_options, partner_vars
from agent.cli.output import echo, echo_json
from agent.editions import EDITIONS, PERIODS
from agent.partner.operations import named


def _license_json(lic) -> dict:
    return {
        "id": lic.id,
        "edition": lic.edition,
        "pricelist": lic.pricelist,
        "status": lic.status.name.lower(),
        "ip": lic.ip,
        "licname": lic.licname,
        "remoteid": lic.remoteid,
        "expiredate": lic.expiredate,
    }


@contextmanager
def _account(options: dict, ledger: bool = False) -> Iterator[tuple]:
    """(client, ledger or None) for the command's partner options, both closed when it ends."""
    vars = partner_vars(**options)
    with partner_client(vars) as client:
        if not ledger:
            yield client, None
            return
        with ledger_of(vars) as opened:
            yield client, opened


def _help(operation: str, more: str = "") -> str:
    return f"{named(operation).summary}{' ' + more if more else ''}"


@click.group()
def licenses() -> None:
    """Licenses in the partner account: list, show, renew, change IP, suspend, resume, delete."""


@licenses.command("list", help=_help("list", "Activation keys are never shown."))
@partner_options
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_licenses(as_json, **options) -> None:
    with _account(options) as (client, _):
        found = client.list()
    if as_json:
        return echo_json([_license_json(lic) for lic in found])
    echo(f"{'ID':<10} {'EDITION':<9} {'STATUS':<10} {'IP':<16} {'EXPIRES':<11} NAME")
    for lic in found:
        echo(
            f"{lic.id:<10} {lic.edition or lic.pricelist:<9} {lic.status.name.lower():<10} {lic.ip:<16} {lic.expiredate:<11} {lic.licname}"
        )


@licenses.command(help="One license (whether its activation key is issued; never the key).")
@click.argument("license_id")
@partner_options
@click.option("--json", "as_json", is_flag=True)
def show(license_id, as_json, **options) -> None:
    with _account(options) as (client, _):
        lic = client.get(license_id)
    data = {**_license_json(lic), "has_key": bool(lic.key)}
    echo_json(data) if as_json else echo("\n".join(f"{k}: {v}" for k, v in data.items()))


@licenses.command(help=_help("renew", "The ledger bills the renewal."))
@click.argument("license_id")
@click.option("--period", type=click.Choice(PERIODS), required=True)
@partner_options
def renew(license_id, period, **options) -> None:
    from agent.licensing import account

    with _account(options, ledger=True) as (client, ledger):
        until = account.renew(client, ledger, license_id, period)
    echo(f"license {license_id} renewed until {until}")


@licenses.command("change-ip", help="Move a license to another server IP (the account may allow this once a month).")
@click.argument("license_id")
@click.argument("ip")
@partner_options
def change_ip(license_id, ip, **options) -> None:
    from agent.licensing import account

    with _account(options) as (client, _):
        account.change_ip(client, license_id, ip)
    echo(f"license {license_id} moved to {ip}")


@licenses.command("change-tariff", help=_help("change_tariff"))
@click.argument("license_id")
@click.argument("edition", type=click.Choice(EDITIONS))
@click.option("--period", type=click.Choice(PERIODS), default="monthly", show_default=True)
@partner_options
def change_tariff(license_id, edition, period, **options) -> None:
    from agent.licensing import account

    with _account(options) as (client, _):
        account.change_tariff(client, license_id, edition, period)
    echo(f"license {license_id} is now {edition}")


def _license_switch(operation: str, done: str) -> click.Command:
    """The command of an operation that takes only the license and leaves billing alone (suspend, resume)."""

    @licenses.command(operation, help=_help(operation))
    @click.argument("license_id")
    @partner_options
    def command(license_id, **options) -> None:
        from agent.licensing import account

        with _account(options) as (client, _):
            getattr(account, operation)(client, license_id)
        echo(f"license {license_id} {done}")

    return command


suspend = _license_switch("suspend", "suspended")
resume = _license_switch("resume", "resumed")


@licenses.command(help=_help("delete", "The ledger bills the deactivation."))
@click.argument("license_id")
@partner_options
@click.option("--yes", is_flag=True, help="Do not ask.")
def delete(license_id, yes, **options) -> None:
    from agent.licensing import account

    if not yes:
        click.confirm(f"Delete license {license_id}? This cannot be undone", abort=True)
    with _account(options, ledger=True) as (client, ledger):
        account.delete(client, ledger, license_id)
    echo(f"license {license_id} deleted")
