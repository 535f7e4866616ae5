"""`report`: tell the partner account which server holds the license, and record the activation.

The activation goes through an outbox in the ledger: it is written as pending first, and only the
account's confirmation (its soft.edit record showing our licname and remoteid) closes it. One the
account did not confirm is retried by the next run's `report` step on this host.
"""

from __future__ import annotations

from agent.errors import PartnerError
from agent.licensing.grant import LICENSE
from agent.runner.context import HostContext
from agent.runner.registry import NoParams, StepResult, changed, ok, skipped, step
from agent.stepkit.wanted import wanted_license


@step("report", NoParams, uses_account=True)
def report_activation(ctx: HostContext, params: NoParams) -> StepResult:
    """Name the license after the server in the account (licname, remoteid); record the activation."""
    grant = ctx.state.get(LICENSE)
    if grant is None or not grant.id:
        return skipped("no license from the partner account to report")
    if grant.action == "none" and grant.key is None:
        return skipped(f"license {grant.id} is not in this partner account: nothing to report")
    if ctx.dry_run:
        return skipped(f"would report license {grant.id} as used by {wanted_license(ctx).fqdn}")
    wanted = wanted_license(ctx)
    ledger = ctx.services.ledger(ctx.settings.account.ledger_location(ctx.state_dir))
    client = ctx.services.account_view(ctx.settings.account.partner).client  # its writes keep the run's view current
    host = ledger.host(ctx.host.name, ctx.host.address, wanted.fqdn)
    ledger.queue_activation(grant.id, host, wanted.ip, grant.edition, grant.period)
    pending = ledger.activations(host.name, state="pending")
    if not pending:
        return ok(f"activation of license {grant.id} already confirmed by the account")
    unconfirmed = []
    for activation in pending:
        try:
            client.set_ip_and_name(activation.license_id, licname=activation.fqdn, remoteid=activation.remoteid)
            record = client.get(activation.license_id)
            if record.licname != activation.fqdn or (record.remoteid and record.remoteid != activation.remoteid):
                raise PartnerError(f"the account still names license {activation.license_id} '{record.licname}'")
        except PartnerError as error:
            ledger.activation_failed(activation, str(error))
            unconfirmed.append(f"{activation.license_id} ({error})")
            continue
        ledger.confirm_activation(activation)
    if unconfirmed:
        return changed(
            f"activation recorded; not yet confirmed by the account, retried next run: {'; '.join(unconfirmed)}"
        )
    return changed(f"license {grant.id} reported as {wanted.fqdn}; activation recorded")
