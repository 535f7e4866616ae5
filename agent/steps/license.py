"""`license`: the host gets a license of its edition and period for its IP, exactly once.

Partner settings come from the host's settings (see agent/partner/settings.py). Hands
`LICENSE` (a LicenseGrant, with the activation key) to the installer and adds
`{"id", "edition", "period", "action"}` to the host's report entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.clock import UTC
from agent.licensing.grant import LICENSE, LicenseGrant
from agent.licensing.plan import WantedLicense, plan_for_host
from agent.panel.hostprobe import PREFLIGHT
from agent.runner.context import HostContext
from agent.runner.registry import NoParams, StepResult, changed, ok, step
from agent.stepkit.wanted import wanted_license

if TYPE_CHECKING:
    from agent.economics.program import Program
    from agent.economics.turnover import RolloutQuote
    from agent.ledger.licenses import LicenseLedger
    from agent.partner.account_view import AccountView


@step("license", NoParams, rerun_on_resume=True, uses_account=True, provides=(LICENSE,))
def license_step(ctx: HostContext, params: NoParams) -> StepResult:
    """Adopt, reuse or order the host's license (exactly once); hand its key to the installer."""
    wanted = wanted_license(ctx)
    key = ctx.settings.license.activation_key
    if key:  # the operator brought the key: nothing to buy. Keys look like "<licid>-<secret>".
        prefix = str(key).split("-", 1)[0]
        grant = LicenseGrant(prefix if prefix.isdigit() else "", str(key), wanted.edition, wanted.period, "none")
        return _handed(ctx, grant, ok(f"activation key from the inventory (license {grant.id or 'unknown'})"))
    # Here, not at the top: every playbook naming this step imports this module to check its
    # parameters, and the ledger (SQLAlchemy) and the partner client (httpx) behind ensure_license
    # cost ~0.3 s of a run's serial start. A host that runs the step loads them (an audit's first
    # host does anyway, for the ledger), while the other hosts are already connecting.
    from agent.licensing.ensure import LicenseWork, ensure_license

    settings = ctx.services.partner_settings(ctx.settings.account.partner)
    view = ctx.services.account_view(ctx.settings.account.partner)
    ledger = ctx.services.ledger(ctx.settings.account.ledger_location(ctx.state_dir))
    preflight = ctx.state.get(PREFLIGHT)
    server_licid = preflight.licid if preflight else None
    if ctx.dry_run:
        return _dry_run(ctx, wanted, view, ledger, server_licid, settings.reuse_free)
    work = LicenseWork(
        client=view.client,
        view=view,
        ledger=ledger,
        wanted=wanted,
        address=ctx.host.address,
        server_licid=server_licid,
        reuse_free=settings.reuse_free,
        key_wait=settings.key_wait,
        settle=settings.settle,
        say=lambda line: ctx.log.write("|", line),
        breaker=ctx.services.order_breaker(ledger),
    )
    grant = ensure_license(work)
    message = f"{grant.action} {grant.edition} license {grant.id} for {wanted.ip}"
    if grant.action == "none":
        message = f"the panel runs license {grant.id}, which is not in this partner account: nothing ordered"
    return _handed(ctx, grant, changed(message) if grant.action in ("ordered", "reused") else ok(message))


def _handed(ctx: HostContext, grant: LicenseGrant, result: StepResult) -> StepResult:
    ctx.state.set(LICENSE, grant)
    ctx.report["license"] = grant.report()
    return result


def _dry_run(
    ctx: HostContext,
    wanted: WantedLicense,
    view: AccountView,
    ledger: LicenseLedger,
    server_licid: str | None,
    reuse_free: bool,
) -> StepResult:
    """The same plan ensure_license would carry out (from the run's view, as it is), priced at today's
    tier; nothing is ordered."""
    from agent.economics.program import load_program
    from agent.economics.turnover import MonthSoFar, month_so_far
    from agent.licensing.ensure import account_near
    from agent.licensing.view import ledger_view, price_today, with_taken

    program_location, today = ctx.settings.account.program_location(), UTC.today()
    program = load_program(program_location)

    def month() -> MonthSoFar:
        # Nothing is ordered in a dry run: the month's billing so far is the same for every host.
        key = ("month so far", id(ledger), str(program_location), today)
        return ctx.services.shared(key, lambda: month_so_far(ledger, program, today))

    known = ledger_view(ledger, wanted.host_name)
    account = account_near(view, wanted, known, server_licid, reuse_free)
    plan = plan_for_host(
        wanted,
        account,
        with_taken(ledger, known, wanted.host_name, account),
        server_licid=server_licid,
        reuse_free=reuse_free,
        quote=price_today(program, month),
    )
    license_id = plan.license.id if plan.license else None
    ctx.report["license"] = {
        "id": license_id,
        "edition": wanted.edition,
        "period": wanted.period,
        "action": plan.action,
    }
    would = {
        "none": "would leave alone:",
        "existing": "would keep",
        "adopted": "would adopt",
        "reused": "would reuse",
        "ordered": "would order",
    }[plan.action]
    message = f"{would} {plan.reason}"
    if plan.action == "ordered":
        priced = _price(ctx, plan.price, program) if plan.price else ""
        message += f" ({wanted.edition} {wanted.period} for {wanted.ip})" + priced
    return changed(message) if plan.action in ("ordered", "reused") else ok(message)


def _price(ctx: HostContext, quote: RolloutQuote, program: Program) -> str:
    """`: 8.00 EUR list, 10 % off: 7.20 EUR` at today's tier (`ispagent plan` prices a whole rollout)."""
    order = quote.orders[0]
    ctx.report["license"].update(list_price=str(order.list_price), discount=str(order.discount), price=str(order.price))
    placeholder = " (placeholder prices)" if program.placeholder_prices else ""
    blocked = f"; blocked: {quote.blocked}" if quote.blocked else ""
    return (
        f": {order.list_price:.2f} {program.currency} list, {order.discount:g} % off: {order.price:.2f} "
        f"{program.currency}{placeholder}{blocked}"
    )
