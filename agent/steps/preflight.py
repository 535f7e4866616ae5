"""`preflight`: can this host take ISPmanager 6 (or does it have it)? Decided before any license is paid for."""

from __future__ import annotations

from agent.panel.hostprobe import (
    PREFLIGHT,
    PRIMARY_IPV4,
    gather_script,
    license_info_read,
    parse_host_facts,
    preflight_of,
)
from agent.panel.mgrctl import LICENSE_INFO, LicenseInfoReading
from agent.panel.preflight_rules import evaluate
from agent.runner.context import HostContext
from agent.runner.registry import NoParams, StepResult, failed, ok, step


@step("preflight", read_only=True, provides=(PREFLIGHT, LICENSE_INFO))
def preflight(ctx: HostContext, params: NoParams) -> StepResult:
    """Check the host against the installer's rules (OS, RAM, hostname, SELinux...) in one round trip."""
    settings = ctx.settings.install
    result = ctx.connection.run(gather_script(settings.repository_url, primary_ipv4=facts_ipv4(ctx)), log_output=False)
    facts = parse_host_facts(result.stdout)
    if not facts.complete and not facts.installed:
        # The probe's shell took license.info for an installed panel's and we do not: judge it in full.
        result = ctx.connection.run(gather_script(settings.repository_url, full=True), log_output=False)
        facts = parse_host_facts(result.stdout)
    if not result.ok and "os_id=" not in result.stdout:
        return failed(f"cannot gather preflight facts: {result.error_line()}")
    license_info = license_info_read(result.stdout)
    if license_info is not None:  # verify reuses it while no step has changed the host since
        ctx.state.set(LICENSE_INFO, LicenseInfoReading(license_info, ctx.host_changes()))
    state = preflight_of(facts, evaluate(facts, settings))
    ctx.state.set(PREFLIGHT, state)
    ctx.report["preflight"] = state.to_report()
    what = f"{facts.memory_mb} MB, hostname {facts.hostname}, " if facts.complete else ""
    ctx.log.write(
        "|",
        "preflight: "
        + "; ".join(
            [f"{facts.os_label}, {what}installed={state.installed}"]
            + [problem.message for problem in state.verdict.problems]
            + list(state.verdict.notes)
        ),
    )
    if not state.verdict.ok:
        return failed("; ".join(f"[{p.rule}] {p.message}" for p in state.verdict.problems))
    if state.installed:
        return ok(f"panel installed ({state.panel_name or 'unknown edition'}, licid {state.licid}): not reinstalled")
    if state.install_running:
        return ok("an install started earlier is still running: the installer step reattaches to it")
    if facts.install_interrupted:
        return ok("an install started earlier was cut off (the server restarted?): the installer step runs it again")
    return ok(f"{facts.os_label}, {facts.memory_mb} MB, {facts.hostname}: ready for ISPmanager 6")


def facts_ipv4(ctx: HostContext) -> str | None:
    """The primary IPv4 the facts step read in this run, if no step that may change the host has
    started since (an audit: facts, preflight, verify); None: the probe asks the host."""
    reading = ctx.still_current(ctx.state.get(PRIMARY_IPV4))
    return reading.address if reading is not None else None
