"""The panel's configuration files for one host (configure writes them, verify checks them): the options
drop-in and ihttpd.conf rendered from templates/ispmanager/, and the record of the mgrctl calls, written
from the calls' argument lists (never templated: see agent/panel/config.py).

The record tells configure when the calls changed; it does not need the passwords themselves, so a
password is recorded as a digest salted with the host's name: a changed password still changes the
record, and the file on the server (and a dry run's diff of it) holds no password."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from agent.panel.config import mgrctl_calls
from agent.panel.hostprobe import PREFLIGHT
from agent.panel.mgrctl import MGR_DIR
from agent.runner.context import HostContext
from agent.runner.registry import StepParams
from agent.secrets import SECRET_FIELDS
from agent.shipped import templates_dir
from agent.transport.quoting import command_line

OPTIONS_DEST = f"{MGR_DIR}/etc/ispmgr.conf.d/ispagent.conf"
IHTTPD_DEST = f"{MGR_DIR}/etc/ihttpd.conf"
CALLS_DEST = f"{MGR_DIR}/etc/ispagent-mgrctl.calls"
CALLS_HEADER = (
    "# mgrctl -m ispmgr calls, one a line (shell-quoted words); ispagent applies them when this file changes.\n"
)


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
    from agent.stepkit.templates import render_template  # jinja2: at the first render, not before the run dials

    variables = {**ctx.template_vars(), "preflight": ctx.state.get(PREFLIGHT)}
    search = [*ctx.source_dirs, templates_dir()]
    rendered = [
        PlannedFile(dest, render_template(search, name, variables, ctx.services).encode(), 0o644, name)
        for dest, name in ((OPTIONS_DEST, params.options_template), (IHTTPD_DEST, params.ihttpd_template))
    ]
    calls = "".join(command_line(_recorded(argv, ctx.host.name)) + "\n" for argv in mgrctl_calls(ctx.settings.panel))
    return [*rendered, PlannedFile(CALLS_DEST, (CALLS_HEADER + calls).encode(), 0o600, "")]


def _recorded(argv: list[str], host_name: str) -> list[str]:
    """A call as its record keeps it: the value of a secret parameter (passwd, confirm) as a digest."""
    recorded = []
    for word in argv:
        key, separator, value = word.partition("=")
        recorded.append(f"{key}={_digest(value, host_name)}" if separator and key in SECRET_FIELDS else word)
    return recorded


@functools.lru_cache(maxsize=256)
def _digest(secret: str, host_name: str) -> str:
    # Slow on purpose: the record is readable by root on the server; a fast hash would be easy to brute-force.
    derived = hashlib.pbkdf2_hmac("sha256", secret.encode(), f"ispagent-mgrctl-calls:{host_name}".encode(), 50_000)
    return "pbkdf2-sha256:" + derived.hex()[:32]
