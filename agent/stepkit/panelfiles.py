"""The panel's configuration files for one host (configure writes them, verify checks them): the options
drop-in and ihttpd.conf rendered from templates/ispmanager/, and the record of the mgrctl calls, written
from the calls' argument lists (never templated: see agent/panel/config.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from agent.panel.config import mgrctl_calls
from agent.panel.mgrctl import MGR_DIR
from agent.runner.context import HostContext
from agent.runner.registry import StepParams
from agent.stepkit.templates import render_template
from agent.transport.ssh import command_line

OPTIONS_DEST = f"{MGR_DIR}/etc/ispmgr.conf.d/ispagent.conf"
IHTTPD_DEST = f"{MGR_DIR}/etc/ihttpd.conf"
CALLS_DEST = f"{MGR_DIR}/etc/ispagent-mgrctl.calls"
CALLS_HEADER = "# mgrctl -m ispmgr calls, one a line (shell-quoted words); ispagent applies them when this file changes.\n"
# The project's own templates, found whatever directory the playbook is in.
PROJECT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


class PanelConfigParams(StepParams):
    """Which templates make the panel's configuration (configure writes them, verify checks them)."""

    options_template: str = "ispmanager/ispagent.conf.j2"
    ihttpd_template: str = "ispmanager/ihttpd.conf.j2"


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
    """The files for this host. A missing variable raises StepFailed naming template and line."""
    variables = {**ctx.template_vars(), "preflight": ctx.state.preflight}
    rendered = [PlannedFile(dest, render_template([*ctx.source_dirs, PROJECT_TEMPLATES], name, variables).encode(), 0o644, name)
                for dest, name in ((OPTIONS_DEST, params.options_template), (IHTTPD_DEST, params.ihttpd_template))]
    calls = CALLS_HEADER + "".join(command_line(argv) + "\n" for argv in mgrctl_calls(ctx.settings.panel))
    # 0600: the calls hold the panel users' passwords.
    return [*rendered, PlannedFile(CALLS_DEST, calls.encode(), 0o600, "")]
