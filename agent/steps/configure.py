"""`configure`: the partner's panel settings, rendered from templates/ispmanager/ and applied with mgrctl.

Three files: an options drop-in in ispmgr.conf.d, ihttpd.conf (listen address, port, allowed
networks) and the record of the mgrctl calls (presets, users). Only what differs is uploaded; when
the calls changed they are made, each from its argument list, and when any file changed the panel
is restarted (`mgrctl -m core exit`).
"""

from __future__ import annotations

from agent.errors import StepFailed
from agent.panel.config import CONFIGURE_PENDING, mgrctl_calls
from agent.panel.mgrctl import MGRCTL
from agent.runner.context import HostContext
from agent.runner.registry import StepResult, changed, failed, ok, step
from agent.secrets import mask
from agent.stepkit.hostfiles import ensure_file
from agent.stepkit.panelfiles import CALLS_DEST, PanelConfigParams, planned_files


@step("configure", PanelConfigParams, provides=(CONFIGURE_PENDING,))
def configure(ctx: HostContext, params: PanelConfigParams) -> StepResult:
    """Render the panel's config from templates, upload what differs, apply with mgrctl."""
    files = planned_files(ctx, params)
    results = {
        planned.dest: ensure_file(ctx, planned.dest, planned.content, planned.mode, with_diff=True) for planned in files
    }
    changed_files = [dest for dest, result in results.items() if result.changed]
    if not changed_files:
        return ok(f"{len(files)} config files up to date")
    if ctx.dry_run:
        ctx.state.set(CONFIGURE_PENDING, tuple(changed_files))  # verify: these would be rewritten first
        diff = "".join(r.data.get("diff", "") for r in results.values())
        return changed(f"would update {', '.join(changed_files)} and restart the panel", diff=mask(diff))
    if CALLS_DEST in changed_files:
        for argv in mgrctl_calls(ctx.settings.panel):
            result = ctx.connection.run([MGRCTL, "-m", "ispmgr", *argv])
            if not result.ok:
                return failed(f"mgrctl -m ispmgr {mask(' '.join(argv[:2]))}...: {result.error_line()}")
    restart = ctx.connection.run([MGRCTL, "-m", "core", "exit"])
    if not restart.ok:
        raise StepFailed(f"mgrctl -m core exit: {restart.error_line()}")
    return changed(f"updated {', '.join(changed_files)}; panel restarted")
