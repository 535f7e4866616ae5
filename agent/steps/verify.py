"""`verify`: check the panel as an operator would, with testinfra over the run's own verified connection.

testinfra's paramiko backend accepts any host key and opens a second connection; ours
(agent/transport/testinfra_host.py) sends every check over the connection whose key was verified.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.installer.state import INSTALL
from agent.licensing.ensure import LICENSE
from agent.panel.config import CONFIGURE_PENDING
from agent.panel.mgrctl import MGRCTL, edition_of, parse_key_values
from agent.runner.context import HostContext
from agent.runner.registry import StepResult, failed, ok, skipped, step
from agent.stepkit.panelfiles import PanelConfigParams, planned_files
from agent.transport.quoting import command_line
from agent.transport.testinfra_host import testinfra_host


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def license_checks(info: dict[str, str], expected_licid: str | None, edition: str) -> list[Check]:
    """license.info against what the run knows: the license id and the inventory's edition."""
    licid = info.get("licid") or ""
    if expected_licid:
        license = Check("license", licid == expected_licid, f"licid {licid or 'none'}, expected {expected_licid}")
    else:
        license = Check("license", licid not in ("", "0"), f"licid {licid or 'none'} (no license id recorded by this run)")
    found = edition_of(info.get("panel_name"))
    return [license, Check("edition", found == edition, f"panel_name {info.get('panel_name') or 'none'}, inventory {edition}")]


def run_checks(ctx: HostContext, params: PanelConfigParams) -> list[Check]:
    host = testinfra_host(ctx.connection)
    port = int(ctx.vars.get("ihttpd_port", 1500))
    # Any address will do: testinfra's "tcp://1500" wants both 0.0.0.0 and ::, and the panel may
    # listen on its main IP only (ihttpd_listen_ip).
    listening = [s for s in host.socket.get_listening_sockets() if s.startswith("tcp://") and s.endswith(f":{port}")]
    detail = f"listening on {', '.join(listening)}" if listening else f"nothing listens on TCP port {port}"
    checks = [Check("ihttpd", bool(listening), detail)]
    info = host.run(command_line([MGRCTL, "-m", "ispmgr", "license.info"]))
    grant = ctx.state.get(LICENSE)
    expected = grant.id if grant else None
    checks += license_checks(parse_key_values(info.stdout) if info.rc == 0 else {}, expected or None,
                             ctx.settings.install.edition)
    pending = ctx.state.get(CONFIGURE_PENDING, ()) if ctx.dry_run else ()
    for planned in planned_files(ctx, params):
        if planned.dest in pending:
            checks.append(Check(f"config:{planned.dest}", True, "would be updated by configure (dry run)"))
            continue
        remote = host.file(planned.dest)
        in_place = remote.exists and remote.sha256sum == planned.sha256
        checks.append(Check(f"config:{planned.dest}", in_place, "as rendered" if in_place else "missing or differs"))
    return checks


@step("verify", PanelConfigParams, read_only=True)
def verify(ctx: HostContext, params: PanelConfigParams) -> StepResult:
    """Panel listening on 1500, license.info's licid and edition as expected, rendered config in place."""
    if ctx.dry_run and ctx.state.get(INSTALL) == "would install":
        return skipped("the panel would be installed first: nothing to verify yet")
    checks = run_checks(ctx, params)
    ctx.report["verify"] = {check.name: {"ok": check.ok, "detail": check.detail} for check in checks}
    bad = [check for check in checks if not check.ok]
    if bad:
        return failed("drift: " + "; ".join(f"{check.name}: {check.detail}" for check in bad))
    return ok(f"all {len(checks)} checks passed")
