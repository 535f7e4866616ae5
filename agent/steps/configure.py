"""`configure`: the partner's panel settings, rendered from templates/ispmanager/ and applied with mgrctl.

Three files: an options drop-in in ispmgr.conf.d, ihttpd.conf (listen address, port, allowed
networks) and a list of mgrctl calls (presets, users). Only what differs is uploaded; when any
file changed the calls are made and the panel restarted (`mgrctl -m core exit`).
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from dataclasses import dataclass

from agent.errors import StepFailed
from agent.panel.mgrctl import MGR_DIR, MGRCTL
from agent.runner.context import HostContext
from agent.secrets import mask, register_secret
from agent.steps.registry import StepParams, StepResult, changed, failed, ok, step
from agent.steps.template import render_template
from agent.steps.upload import ensure_file

OPTIONS_DEST = f"{MGR_DIR}/etc/ispmgr.conf.d/ispagent.conf"
IHTTPD_DEST = f"{MGR_DIR}/etc/ihttpd.conf"
CALLS_DEST = f"{MGR_DIR}/etc/ispagent-mgrctl.calls"
# The project's own templates, found whatever directory the playbook is in.
PROJECT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


class PanelConfigParams(StepParams):
    """Which templates make the panel's configuration (configure writes them, verify checks them)."""

    options_template: str = "ispmanager/ispagent.conf.j2"
    ihttpd_template: str = "ispmanager/ihttpd.conf.j2"
    calls_template: str = "ispmanager/mgrctl-calls.j2"


@dataclass(frozen=True)
class PlannedFile:
    dest: str
    content: bytes
    mode: int
    template: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def planned_files(ctx: HostContext, params: PanelConfigParams) -> list[PlannedFile]:
    """The rendered files for this host. A missing variable raises StepFailed naming template and line."""
    for user in ctx.vars.get("panel_users") or []:
        if isinstance(user, dict) and user.get("password"):
            register_secret(str(user["password"]))
    variables = {**ctx.template_vars(), "preflight": ctx.state.preflight}
    wanted = ((OPTIONS_DEST, params.options_template, 0o644), (IHTTPD_DEST, params.ihttpd_template, 0o644),
              (CALLS_DEST, params.calls_template, 0o600))
    return [PlannedFile(dest, render_template([*ctx.source_dirs, PROJECT_TEMPLATES], name, variables).encode(), mode, name)
            for dest, name, mode in wanted]


def mgrctl_calls(content: bytes) -> list[list[str]]:
    """The calls file as argv lists (comments and blank lines skipped)."""
    calls = []
    for line in content.decode().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            calls.append(shlex.split(line))
    return calls


@step("configure", PanelConfigParams)
def configure(ctx: HostContext, params: PanelConfigParams) -> StepResult:
    """Render the panel's config from templates, upload what differs, apply with mgrctl."""
    files = planned_files(ctx, params)
    results = {planned.dest: ensure_file(ctx, planned.dest, planned.content, planned.mode, with_diff=True)
               for planned in files}
    changed_files = [dest for dest, result in results.items() if result.changed]
    if not changed_files:
        return ok(f"{len(files)} config files up to date")
    if ctx.dry_run:
        ctx.state.configure_pending = tuple(changed_files)  # verify: these would be rewritten first
        diff = "".join(r.data.get("diff", "") for r in results.values())
        return changed(f"would update {', '.join(changed_files)} and restart the panel", diff=mask(diff))
    if CALLS_DEST in changed_files:
        for argv in mgrctl_calls(files[-1].content):
            result = ctx.connection.run([MGRCTL, "-m", "ispmgr", *argv])
            if not result.ok:
                return failed(f"mgrctl -m ispmgr {mask(' '.join(argv[:2]))}...: {result.error_line()}")
    restart = ctx.connection.run([MGRCTL, "-m", "core", "exit"])
    if not restart.ok:
        raise StepFailed(f"mgrctl -m core exit: {restart.error_line()}")
    return changed(f"updated {', '.join(changed_files)}; panel restarted")
