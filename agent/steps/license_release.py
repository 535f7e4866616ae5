"""`license_release`: give up a decommissioned server's license, per the partner's policy.

park (default): suspend it and move it to 0.0.0.0 named free.lic, as ISPsystem's own WHMCS module
does, so a later `license` step with `reuse_free: true` moves it to a new server instead of
ordering; suspend: only suspend it; delete: delete it from the account (not reversible).
"""

from __future__ import annotations

from typing import Literal

from agent.errors import PartnerNotFound
from agent.licensing import account
from agent.panel.hostprobe import PREFLIGHT
from agent.panel.mgrctl import MGRCTL, parse_key_values
from agent.partner.model import FREE_LICNAME, AccountLicense, LicenseStatus
from agent.runner.context import HostContext
from agent.runner.registry import StepParams, StepResult, changed, ok, skipped, step

PARKED_IP = "0.0.0.0"


class ReleaseParams(StepParams):
    policy: Literal["park", "suspend", "delete"] = "park"


@step("license_release", ReleaseParams, uses_account=True)
def license_release(ctx: HostContext, params: ReleaseParams) -> StepResult:
    """Park, suspend or delete the license of a server being decommissioned."""
    ledger = ctx.services.ledger(ctx.settings.account.ledger_location(ctx.state_dir))
    held = ledger.license_of_host(ctx.host.name)
    license_id = _panel_licid(ctx) or (held.id if held else None)
    if not license_id or license_id == "0":
        return skipped("no license known for this server (none on the panel, none in the ledger)")
    client = ctx.services.account_view(ctx.settings.account.partner).client  # its writes keep the run's view current
    try:
        lic = client.get(license_id)
    except PartnerNotFound:
        return skipped(f"license {license_id} is not in this partner account: nothing to release")
    ctx.report["license_release"] = {"id": license_id, "policy": params.policy}
    if _released(lic, params.policy):
        return ok(f"license {license_id} already released ({params.policy})")
    if ctx.dry_run:
        return changed(f"would {params.policy} license {license_id}")
    if params.policy == "delete":
        account.delete(client, ledger, license_id)  # billed as a deactivation, and the ledger lets it go
    else:
        if lic.status != LicenseStatus.SUSPENDED:
            client.suspend(license_id)
        if params.policy == "park":
            client.set_ip_and_name(license_id, ip=PARKED_IP, licname=FREE_LICNAME, remoteid="")
        if held and held.id == license_id:
            ledger.forget_license(license_id, f"released from {ctx.host.name} ({params.policy})")
    ledger.event("deactivation", ctx.host.name, license_id, policy=params.policy)
    return changed(f"license {license_id} released ({params.policy})")


def _panel_licid(ctx: HostContext) -> str | None:
    """The licid the panel on the server runs (license.info), if a panel is there."""
    preflight = ctx.state.get(PREFLIGHT)
    if preflight is not None:
        return preflight.licid
    result = ctx.connection.run(f"[ -x {MGRCTL} ] && {MGRCTL} -m ispmgr license.info || true", log_output=False)
    return parse_key_values(result.stdout).get("licid") or None


def _released(lic: AccountLicense, policy: str) -> bool:
    if policy == "delete":
        return lic.status == LicenseStatus.DELETED
    suspended = lic.status == LicenseStatus.SUSPENDED
    return suspended and (policy == "suspend" or (lic.ip == PARKED_IP and lic.licname == FREE_LICNAME))
