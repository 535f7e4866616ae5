"""Options and lookups the partner-account and economics commands share.

Partner settings come from an inventory's vars (-i; the first selected host's partner_* vars)
and/or options; the credentials from partner_credentials_file or $ISPAGENT_PARTNER_AUTHINFO. The
ledger and the program file come from options, else the inventory's vars (ledger_url, ledger_path,
program_file), else the environment ($ISPAGENT_LEDGER_URL, $ISPAGENT_LEDGER, $ISPAGENT_PROGRAM),
else the defaults.
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.clock import UTC
from agent.errors import InputError
from agent.secrets import shown

FILE = click.Path(dir_okay=False, path_type=Path)

_PARTNER = [
    click.option("-i", "--inventory", type=FILE, help="Take partner settings from this inventory's vars."),
    click.option("--api-url", help="Partner API URL (default: by --region)."),
    click.option("--region", type=click.Choice(["eu", "ru"]), help="Account region: api-eu or the Russian endpoint."),
    click.option("--credentials-file", type=click.Path(dir_okay=False), help="0600 file with user:password."),
]
_ECONOMICS = [
    click.option(
        "-i", "--inventory", type=FILE, help="Take ledger_url / ledger_path / program_file from this inventory's vars."
    ),
    click.option(
        "--ledger", "ledger_at", metavar="PATH|URL", help="The ledger: a SQLite file or postgresql+psycopg://… URL."
    ),
    click.option(
        "--program", "program_file", type=FILE, help="Program rules file (default: the shipped agent/program.yaml)."
    ),
    click.option("--today", metavar="YYYY-MM-DD", hidden=True, help="Pretend today is this day (tests)."),
]
_FLEET = [
    click.option("-i", "--inventory", type=FILE, required=True),
    click.option("-l", "--limit", help="Only these hosts."),
]


def _stacked(options: list):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


partner_options = _stacked(_PARTNER)
economics_options = _stacked(_ECONOMICS)
fleet_options = _stacked(_FLEET)


def money(value) -> str:
    return f"{value:,.2f}"


def inventory_hosts(inventory: Path | None, limit: str | None = None) -> list:
    if not inventory:
        return []
    from agent.inventory.loader import load_inventory

    return load_inventory(inventory).select(limit)


def first_vars(hosts: list) -> dict:
    """The vars of the selected hosts' one account (partner, ledger, program): their first host's.

    Selected hosts of several accounts are refused in one line: a command that speaks to one
    account must not silently take the first host's.
    """
    if not hosts:
        return {}
    from agent.rollout import Rollout

    fix = "give an inventory whose hosts share one account (or select them with --limit where the command has it)"
    return dict(Rollout(hosts, where="the inventory").single("this command", fix).hosts[0].vars)


def inventory_vars(inventory: Path | None, limit: str | None = None) -> dict:
    return first_vars(inventory_hosts(inventory, limit))


def partner_vars(inventory=None, api_url=None, region=None, credentials_file=None, limit=None) -> dict:
    """The inventory's vars with the partner options laid over them."""
    vars = inventory_vars(inventory, limit)
    overrides = {"partner_api_url": api_url, "partner_region": region, "partner_credentials_file": credentials_file}
    vars.update({key: value for key, value in overrides.items() if value})
    if region and not api_url:
        vars.pop("partner_api_url", None)
    return vars


def partner_client(vars: dict):
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    return PartnerClient(settings_from_vars(vars))


def ledger_of(vars: dict, given: str | None = None):
    from agent.ledger import LicenseLedger, ledger_location

    return LicenseLedger(given or ledger_location(vars))


def program_of(vars: dict, given: Path | None = None):
    from agent.economics.program import load_program, program_location

    return load_program(program_location(vars, given))


def economics_context(inventory, ledger_at, program_file, today):
    """(ledger, program, today) of the economics options."""
    from agent.economics.rules import parse_day

    vars = inventory_vars(inventory)
    program = program_of(vars, program_file)
    ledger = ledger_of(vars, ledger_at)
    day = parse_day(today) if today else UTC.today()
    if day is None:
        raise InputError(f"--today {shown(today)}: write YYYY-MM-DD")
    return ledger, program, day
