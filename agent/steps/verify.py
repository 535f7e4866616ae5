"""`verify`: check the panel as an operator would (its port listening, license.info, the rendered
files), in one round trip over the run's own verified connection (agent/panel/panelprobe.py).

It used testinfra (a round trip and a few processes per check): at fleet scale the nightly audit
paid for that on every host, so the checks are asked of the host in one shell program instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import StepFailed
from agent.installer.state import INSTALL
from agent.licensing.grant import LICENSE
from agent.panel.config import CONFIGURE_PENDING
from agent.panel.listening import url_port
from agent.panel.mgrctl import LICENSE_INFO, edition_of
from agent.panel.panelprobe import panel_probe_script, parse_panel_probe
from agent.runner.context import HostContext
from agent.runner.registry import StepResult, failed, ok, skipped, step
from agent.stepkit.panelfiles import PanelConfigParams, planned_files


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
        license = Check(
            "license", licid not in ("", "0"), f"licid {licid or 'none'} (no license id recorded by this run)"
        )
    found = edition_of(info.get("panel_name"))
    return [
        license,
        Check("edition", found == edition, f"panel_name {info.get('panel_name') or 'none'}, inventory {edition}"),
    ]


def current_license_info(ctx: HostContext) -> dict[str, str] | None:
    """license.info as preflight read it in this run, if no step that may change the host has started
    since (an audit: facts, preflight, verify); None: ask the host again."""
    reading = ctx.still_current(ctx.state.get(LICENSE_INFO))
    if reading is None:
        return None
    ctx.log.write("|", "verify: license.info as preflight read it (no step has changed the host since)")
    return reading.info


def run_checks(ctx: HostContext, params: PanelConfigParams) -> list[Check]:
    """Every check, from one answer of the host's (StepFailed when it gave no whole answer)."""
    port = int(ctx.vars.get("ihttpd_port", 1500))
    pending = ctx.state.get(CONFIGURE_PENDING, ()) if ctx.dry_run else ()
    planned = planned_files(ctx, params)
    to_sum = [file.dest for file in planned if file.dest not in pending]
    known = current_license_info(ctx)
    result = ctx.connection.run(panel_probe_script(to_sum, license_info=known is None), log_output=False)
    probe = parse_panel_probe(result.stdout)
    if not probe.complete:
        raise StepFailed(f"cannot run the verify checks: {result.error_line()}")
    # Any address will do: the panel may listen on its main IP only (ihttpd_listen_ip).
    listening = [url for url in probe.listening if url_port(url) == port]
    detail = f"listening on {', '.join(listening)}" if listening else f"nothing listens on TCP port {port}"
    checks = [Check("ihttpd", bool(listening), detail)]
    grant = ctx.state.get(LICENSE)
    expected = grant.id if grant else None
    info = probe.license_info if known is None else known
    checks += license_checks(info, expected or None, ctx.settings.install.edition)
    for file in planned:
        if file.dest in pending:
            checks.append(Check(f"config:{file.dest}", True, "would be updated by configure (dry run)"))
            continue
        in_place = probe.file_matches(file.dest, file.sha256)
        checks.append(Check(f"config:{file.dest}", in_place, "as rendered" if in_place else "missing or differs"))
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
