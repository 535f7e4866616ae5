"""`license`: the host gets a license of its edition and period for its IP, exactly once.

Partner settings come from the host's vars (see agent/partner/settings.py). Hands
`state["license"]` (a LicenseGrant, with the activation key) to the installer and adds
`{"id", "edition", "period", "action"}` to the host's report entry.
"""

from __future__ import annotations

from agent.ledger import default_ledger_path, open_ledger
from agent.licensing.ensure import LicenseGrant, LicenseWork, ensure_license
from agent.licensing.plan import WantedLicense, plan_license
from agent.partner.client import client_for
from agent.partner.settings import settings_from_vars
from agent.runner.context import HostContext
from agent.steps.registry import NoParams, StepResult, changed, ok, step


def wanted_license(ctx: HostContext) -> WantedLicense:
    """Edition, period, IP and name of the license this host needs."""
    preflight = ctx.state.get("preflight")
    ip = getattr(preflight, "primary_ipv4", None) or ctx.facts.get("primary_ipv4") or ctx.host.address
    fqdn = ctx.vars.get("fqdn") or ctx.facts.get("fqdn") or ctx.host.name
    return WantedLicense(ctx.host.name, str(ip), str(fqdn), ctx.vars.get("edition", "lite"), ctx.vars.get("period", "monthly"))


@step("license", NoParams, rerun_on_resume=True)
def license_step(ctx: HostContext, params: NoParams) -> StepResult:
    """Adopt, reuse or order the host's license (exactly once); hand its key to the installer."""
    wanted = wanted_license(ctx)
    key = ctx.vars.get("activation_key")
    if key:  # the operator brought the key: nothing to buy. Keys look like "<licid>-<secret>".
        prefix = str(key).split("-", 1)[0]
        grant = LicenseGrant(prefix if prefix.isdigit() else "", str(key), wanted.edition, wanted.period, "none")
        return _handed(ctx, grant, ok(f"activation key from the inventory (license {grant.id or 'unknown'})"))
    settings = settings_from_vars(ctx.vars)
    client = client_for(settings)
    ledger = open_ledger(default_ledger_path(ctx.vars, ctx.state_dir))
    server_licid = getattr(ctx.state.get("preflight"), "licid", None)
    if ctx.dry_run:
        return _dry_run(ctx, wanted, client, ledger, server_licid, settings.reuse_free)
    work = LicenseWork(
        client=client, ledger=ledger, wanted=wanted, address=ctx.host.address, server_licid=server_licid,
        reuse_free=settings.reuse_free, key_wait=settings.key_wait, settle=settings.settle,
        say=lambda line: ctx.log.write("|", line),
    )
    grant = ensure_license(work)
    message = f"{grant.action} {grant.edition} license {grant.id} for {wanted.ip}"
    if grant.action == "none":
        message = f"the panel runs license {grant.id}, which is not in this partner account: nothing ordered"
    return _handed(ctx, grant, changed(message) if grant.action in ("ordered", "reused") else ok(message))


def _handed(ctx: HostContext, grant: LicenseGrant, result: StepResult) -> StepResult:
    ctx.state["license"] = grant
    ctx.report["license"] = grant.report()
    return result


def _dry_run(ctx, wanted, client, ledger, server_licid, reuse_free) -> StepResult:
    known = next((h for h in ledger.hosts() if h.name == wanted.host_name), None)
    held = ledger.license_of_host(wanted.host_name)
    taken = frozenset(lic.id for lic in ledger.licenses() if lic.host_name not in (None, wanted.host_name))
    plan = plan_license(
        wanted, client.list(), server_licid=server_licid, ledger_license_id=held.id if held else None,
        remoteid=known.remoteid if known else None, reuse_free=reuse_free, taken=taken,
    )
    license_id = plan.license.id if plan.license else None
    ctx.report["license"] = {"id": license_id, "edition": wanted.edition, "period": wanted.period, "action": plan.action}
    would = {"none": "would leave alone:", "existing": "would keep", "adopted": "would adopt", "reused": "would reuse", "ordered": "would order"}[plan.action]
    message = f"{would} {plan.reason}" + (f" ({wanted.edition} {wanted.period} for {wanted.ip})" if plan.action == "ordered" else "")
    if plan.action == "ordered":
        message += _price_today(ctx, ledger, wanted)
    return changed(message) if plan.action in ("ordered", "reused") else ok(message)


def _price_today(ctx: HostContext, ledger, wanted: WantedLicense) -> str:
    """`: 8.00 EUR list, 10 % off: 7.20 EUR` at today's tier (`ispagent plan` prices a whole rollout)."""
    from datetime import date

    from agent.economics.program import load_program, program_location
    from agent.economics.turnover import quote_rollout

    program = load_program(program_location(ctx.vars))
    quote = quote_rollout(ledger, program, [(wanted.edition, wanted.period)], date.today())
    order = quote.orders[0]
    ctx.report["license"].update(list_price=str(order.list_price), discount=str(order.discount), price=str(order.price))
    placeholder = " (placeholder prices)" if program.placeholder_prices else ""
    blocked = f"; blocked: {quote.blocked}" if quote.blocked else ""
    return (f": {order.list_price:.2f} {program.currency} list, {order.discount:g} % off: {order.price:.2f} "
            f"{program.currency}{placeholder}{blocked}")
