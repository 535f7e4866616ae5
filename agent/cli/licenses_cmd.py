"""`ispagent licenses ...`, `ispagent reconcile`, `ispagent plan`: the partner account from the shell.

Settings come from an inventory's vars (-i; the first selected host's partner_* vars) and/or
options; the credentials from partner_credentials_file or $ISPAGENT_PARTNER_AUTHINFO.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import click

from agent.editions import EDITIONS, PERIODS
from agent.secrets import mask

_PARTNER_OPTIONS = [
    click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path), help="Take partner settings from this inventory's vars."),
    click.option("--api-url", help="Partner API URL (default: by --region)."),
    click.option("--region", type=click.Choice(["eu", "ru"]), help="Account region: api-eu or the Russian endpoint."),
    click.option("--credentials-file", type=click.Path(dir_okay=False), help="0600 file with user:password."),
]


def partner_options(function):
    for option in reversed(_PARTNER_OPTIONS):
        function = option(function)
    return function


def _vars(inventory, api_url, region, credentials_file, limit=None) -> dict:
    vars: dict = {}
    if inventory:
        from agent.inventory.loader import load_inventory

        hosts = load_inventory(inventory).select(limit)
        vars = dict(hosts[0].vars) if hosts else {}
    overrides = {"partner_api_url": api_url, "partner_region": region, "partner_credentials_file": credentials_file}
    vars.update({key: value for key, value in overrides.items() if value})
    if region and not api_url:
        vars.pop("partner_api_url", None)
    return vars


def _client(**options):
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    return PartnerClient(settings_from_vars(_vars(**options)))


def _license_json(lic) -> dict:
    return {"id": lic.id, "edition": lic.edition, "pricelist": lic.pricelist, "status": lic.status.name.lower(),
            "ip": lic.ip, "licname": lic.licname, "remoteid": lic.remoteid, "expiredate": lic.expiredate}


def _echo(text: str) -> None:
    click.echo(mask(text))


@click.group()
def licenses() -> None:
    """Licenses in the partner account: list, show, renew, change IP, suspend, resume, delete."""


@licenses.command("list")
@partner_options
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_licenses(as_json, **options) -> None:
    """Every license of the account (activation keys are never shown)."""
    found = _client(**options).list()
    if as_json:
        return _echo(json.dumps([_license_json(lic) for lic in found], indent=2))
    _echo(f"{'ID':<10} {'EDITION':<9} {'STATUS':<10} {'IP':<16} {'EXPIRES':<11} NAME")
    for lic in found:
        _echo(f"{lic.id:<10} {lic.edition or lic.pricelist:<9} {lic.status.name.lower():<10} {lic.ip:<16} {lic.expiredate:<11} {lic.licname}")


@licenses.command()
@click.argument("license_id")
@partner_options
@click.option("--json", "as_json", is_flag=True)
def show(license_id, as_json, **options) -> None:
    """One license (its activation key is not shown)."""
    lic = _client(**options).get(license_id)
    data = {**_license_json(lic), "has_key": bool(lic.key)}
    _echo(json.dumps(data, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in data.items()))


@licenses.command()
@click.argument("license_id")
@click.option("--period", type=click.Choice(PERIODS), required=True)
@partner_options
def renew(license_id, period, **options) -> None:
    """Prolong a license (paid from the account balance); the ledger bills the renewal."""
    client = _client(**options)
    until = client.renew(license_id, period)
    _bill(options, "renewal", client.get(license_id), period)
    _echo(f"license {license_id} renewed until {until}")


def _bill(options: dict, kind: str, lic, period: str | None) -> None:
    """Record a renewal or deletion done from the shell in the ledger's billing (what turnover reads)."""
    from agent.ledger import BillingEvent, ledger_location, open_ledger
    from agent.ledger.store import utc_today

    ledger = open_ledger(ledger_location(_vars(**options)))
    ledger.record_billing(BillingEvent(utc_today(), kind, lic.id, lic.edition, period), source="cli")


@licenses.command("change-ip")
@click.argument("license_id")
@click.argument("ip")
@partner_options
def change_ip(license_id, ip, **options) -> None:
    """Move a license to another server IP (the account may allow this once a month)."""
    _client(**options).set_ip_and_name(license_id, ip=ip)
    _echo(f"license {license_id} moved to {ip}")


@licenses.command("change-tariff")
@click.argument("license_id")
@click.argument("edition", type=click.Choice(EDITIONS))
@click.option("--period", type=click.Choice(PERIODS), default="monthly", show_default=True)
@partner_options
def change_tariff(license_id, edition, period, **options) -> None:
    """Switch a license to another edition."""
    _client(**options).change_tariff(license_id, edition, period)
    _echo(f"license {license_id} is now {edition}")


def _simple(name: str, verb: str, done: str, confirm: bool = False):
    @licenses.command(name, help=f"{verb} a license.")
    @click.argument("license_id")
    @partner_options
    @click.option("--yes", is_flag=True, help="Do not ask.") if confirm else (lambda f: f)
    def command(license_id, yes=True, **options) -> None:
        if confirm and not yes:
            click.confirm(f"{verb} license {license_id}? This cannot be undone", abort=True)
        client = _client(**options)
        lic = client.get(license_id) if name == "delete" else None
        getattr(client, name)(license_id)
        if lic is not None:
            _bill(options, "deactivation", lic, None)
        _echo(f"license {license_id} {done}")

    return command


_simple("suspend", "Suspend", "suspended")
_simple("resume", "Resume", "resumed")
_simple("delete", "Delete", "deleted", confirm=True)


def _wanted(inventory: Path, limit: str | None):
    from agent.inventory.loader import load_inventory
    from agent.license import WantedLicense

    hosts = load_inventory(inventory).select(limit)
    return [WantedLicense(h.name, h.address, str(h.vars.get("fqdn") or h.name), h.vars.get("edition", "lite"),
                          h.vars.get("period", "monthly")) for h in hosts], (dict(hosts[0].vars) if hosts else {})


def _account_and_ledger(vars: dict):
    from agent.ledger import default_ledger_path, open_ledger
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    settings = settings_from_vars(vars)
    return PartnerClient(settings).list(), open_ledger(default_ledger_path(vars)), settings


def _program(vars: dict):
    from agent.economics.program import load_program, program_location

    return load_program(program_location(vars))


@click.command()
@click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("-l", "--limit", help="Only these hosts.")
@click.option("--days", type=int, default=30, show_default=True, help="Report licenses expiring within this many days.")
@click.option("--json", "as_json", is_flag=True)
def reconcile(inventory, limit, days, as_json) -> None:
    """Compare servers, the ledger and the partner account.

    The servers' IPs are the inventory addresses; findings: missing, orphaned, ip-mismatch,
    edition-mismatch, expiring, unconfirmed (activations the account has not confirmed), and for the
    turnover: unbilled (an account license the ledger bills nothing for) and billed-gone (the ledger
    bills a license the account no longer holds).
    """
    from agent.economics.turnover import billing_findings
    from agent.license import reconcile as compare

    wanted, vars = _wanted(inventory, limit)
    account, ledger, _ = _account_and_ledger(vars)
    findings = compare(wanted, account, ledger, date.today().isoformat(), days)
    findings += billing_findings(account, ledger.running_terms())
    if as_json:
        return _echo(json.dumps([f.__dict__ for f in findings], indent=2))
    for f in findings:
        _echo(f"{f.kind:<17} {f.host_name or '-':<12} {f.license_id or '-':<10} {f.detail}")
    _echo(f"{len(findings)} finding(s) for {len(wanted)} host(s) and {len(account)} license(s) in the account")


@click.command()
@click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("-l", "--limit", help="Only these hosts.")
@click.option("--json", "as_json", is_flag=True)
def plan(inventory, limit, as_json) -> None:
    """Show, per host, whether a license would be adopted, reused or ordered, before any money is spent.

    Uses the inventory addresses as the servers' IPs and does not connect to them
    (`ispagent run --dry-run` also reads each server's current license). Each license to order is
    priced from the program file at the discount it would get today, tier raises included.
    """
    from agent.economics.turnover import quote_rollout
    from agent.license import plan_hosts

    wanted, vars = _wanted(inventory, limit)
    account, ledger, settings = _account_and_ledger(vars)
    program = _program(vars)
    plans = plan_hosts(wanted, account, ledger, settings.reuse_free)
    ordered = [p for p in plans if p.action == "ordered"]
    quote = quote_rollout(ledger, program, [(p.wanted.edition, p.wanted.period) for p in ordered], date.today())
    cost = {p.host_name: q for p, q in zip(ordered, quote.orders)}
    totals = Counter((p.action, p.wanted.edition, p.wanted.period) for p in plans)
    money = _money_summary(quote, program)
    if as_json:
        data = {"hosts": [{"host": p.host_name, "ip": p.wanted.ip, "edition": p.wanted.edition, "period": p.wanted.period,
                           "action": p.action, "license_id": p.license_id, "reason": p.reason,
                           **({"list_price": float(cost[p.host_name].list_price), "discount": float(cost[p.host_name].discount),
                               "price": float(cost[p.host_name].price)} if p.host_name in cost else {})} for p in plans],
                "totals": [{"action": a, "edition": e, "period": pe, "hosts": n} for (a, e, pe), n in sorted(totals.items())],
                "money": money}
        return _echo(json.dumps(data, indent=2))
    cur = program.currency
    for p in plans:
        q = cost.get(p.host_name)
        price = f"{q.list_price:>8.2f} {q.discount:>3g} % {q.price:>8.2f}" if q else f"{'-':>8} {'-':>5} {'-':>8}"
        _echo(f"{p.host_name:<12} {p.wanted.ip:<16} {p.wanted.edition:<9} {p.wanted.period:<8} {p.action:<9} "
              f"{p.license_id or '-':<10} {price}  {p.reason}")
    _echo("totals:")
    for (action, edition, period), count in sorted(totals.items()):
        spent = sum((cost[p.host_name].price for p in ordered if (p.wanted.edition, p.wanted.period) == (edition, period)), Decimal(0))
        _echo(f"  {action:<9} {edition:<9} {period:<8} {count:>4}" + (f"  {spent:>10.2f} {cur}" if action == "ordered" else ""))
    _echo(f"to order: {len(ordered)} license(s), {quote.total_list:.2f} {cur} at list price, "
          f"{quote.total:.2f} {cur} after discount (billed with this month's invoice, §5)")
    _echo(f"this month's turnover: {money['turnover_before']:.2f} -> {money['turnover_after']:.2f} {cur}; "
          f"tier {money['tier_before']} -> {money['tier_after']}")
    if program.placeholder_prices:
        _echo(f"warning: list prices in {program.source} are placeholders: enter your partner prices there")
    if quote.blocked:
        _echo(f"blocked: {quote.blocked}")


def _money_summary(quote, program) -> dict:
    def tier(statement) -> str:
        return f"{program.discount(statement.closing_tier, statement.opening.lost):g} %"

    return {"currency": program.currency, "to_order": len(quote.orders), "list_total": float(quote.total_list),
            "total": float(quote.total), "turnover_before": float(quote.before.turnover),
            "turnover_after": float(quote.after.turnover), "tier_before": tier(quote.before), "tier_after": tier(quote.after),
            "raises": [{"on": r.on, "discount": float(program.tiers[r.tier].discount)} for r in quote.after.raises
                       if r not in quote.before.raises],
            "placeholder_prices": program.placeholder_prices, "blocked": quote.blocked}
