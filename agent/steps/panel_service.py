"""`panel_service`: the panel's web server (ihttpd) answers on its port; a stopped one is started.

configure restarts the panel only when a file it writes changed, so a panel that was stopped with
its configuration intact would stay down and fail verify on every nightly reprovision. This step
looks at the listening sockets in one round trip and restarts the panel (`mgrctl -m core exit`,
the documented restart) only when nothing listens on `ihttpd_port`.
"""

from __future__ import annotations

from agent.errors import StepFailed
from agent.installer.state import INSTALL
from agent.panel.listening import port_listening_function
from agent.panel.mgrctl import MGRCTL
from agent.runner.context import HostContext
from agent.runner.registry import NoParams, StepResult, changed, ok, skipped, step
from agent.transport.quoting import command_line

START_WAIT_SECONDS = 10


def check_script(port: int) -> str:
    """Prints `absent` (no panel), `listening` or `stopped`."""
    return (
        port_listening_function(port)
        + f"if [ ! -x {command_line([MGRCTL])} ]; then echo absent; elif listening; then echo listening; "
        "else echo stopped; fi"
    )


def wait_script(port: int, seconds: int = START_WAIT_SECONDS) -> str:
    """Exits 0 as soon as something listens on `port`, 1 after `seconds`."""
    tries = seconds * 5
    return (
        port_listening_function(port)
        + f"i=0; while [ $i -lt {tries} ]; do listening && exit 0; sleep 0.2; i=$((i + 1)); done; exit 1"
    )


def panel_port(ctx: HostContext) -> int:
    port = ctx.vars.get("ihttpd_port", 1500)
    if isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(port) <= 65535:
        raise StepFailed(f"ihttpd_port {port!r} is not a TCP port (1-65535)")
    return int(port)


@step("panel_service", NoParams)
def panel_service(ctx: HostContext, params: NoParams) -> StepResult:
    """Start the panel when nothing listens on its port (ihttpd_port, default 1500)."""
    if ctx.dry_run and ctx.state.get(INSTALL) == "would install":
        return skipped("the panel would be installed first")
    port = panel_port(ctx)
    state = ctx.connection.run(check_script(port))
    found = state.stdout.strip()
    if not state.ok or found not in ("absent", "listening", "stopped"):
        raise StepFailed(f"cannot tell whether the panel runs: {state.error_line()}")
    if found == "absent":
        return skipped("no panel installed")
    if found == "listening":
        return ok(f"the panel listens on port {port}")
    if ctx.dry_run:
        return changed(f"nothing listens on port {port}: would start the panel")
    restart = ctx.connection.run([MGRCTL, "-m", "core", "exit"])
    if not restart.ok:
        raise StepFailed(f"mgrctl -m core exit: {restart.error_line()}")
    if not ctx.connection.run(wait_script(port), timeout=START_WAIT_SECONDS + 20).ok:
        raise StepFailed(f"the panel was restarted but nothing listens on port {port} after {START_WAIT_SECONDS} s")
    return changed(f"nothing listened on port {port}: panel started")
