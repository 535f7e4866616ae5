"""The panel's configuration files for one host, rendered from templates/ispmanager/ (configure writes them, verify checks them)."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from agent.panel.mgrctl import MGR_DIR
from agent.runner.context import HostContext
from agent.secrets import register_secret
from agent.stepkit.templates import render_template
from agent.runner.registry import StepParams

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
