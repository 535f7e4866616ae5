"""`installer`: run the vendor's install.sh detached from the SSH session, follow its log, classify failures.

install.sh runs under `setsid nohup` with its whole output kept in INSTALLER_DIR/install.log (the
real script deletes its own log), so a dropped connection does not kill an install in progress. A
resumed run finds it by its pid file and reattaches instead of starting a second one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.errors import InstallerFailed
from agent.installer.command import installer_command
from agent.installer.messages import ALREADY_INSTALLED, DPKG_INTERRUPTED, FailureClass, classify_output, failure_line
from agent.installer.settings import InstallSettings
from agent.installer.state import INSTALL, INSTALLER_DIR
from agent.licensing.grant import LICENSE
from agent.panel.hostprobe import PREFLIGHT, Preflight
from agent.panel.mgrctl import MGRCTL
from agent.runner.context import HostContext
from agent.runner.registry import StepParams, StepResult, changed, failed, skipped, step
from agent.secrets import mask, register_secret
from agent.transport.quoting import command_line

SCRIPT = f"{INSTALLER_DIR}/install.sh"
LOG = f"{INSTALLER_DIR}/install.log"


class InstallerParams(StepParams):
    poll_seconds: float = 1.0  # how often the server's install log is read back


# -- the install on the server -----------------------------------------------------------------

_STATUS = r"""
d=__DIR__
pid=$(cat $d/install.pid 2>/dev/null); running=0
if [ -n "$pid" ] && [ ! -e $d/install.rc ] && [ -r /proc/$pid/cmdline ]; then
  case "$(tr '\0' ' ' < /proc/$pid/cmdline)" in *ispagent-install*) running=1;; esac
fi
rc=$(cat $d/install.rc 2>/dev/null)
size=$(wc -c < $d/install.log 2>/dev/null || echo 0)
collected=0; [ -e $d/install.collected ] && collected=1
started=0; [ -n "$pid" ] && started=1
echo "status running=$running rc=$rc size=$size started=$started collected=$collected"
""".replace("__DIR__", INSTALLER_DIR)

_LAUNCH = r"""
cd __DIR__ || exit 1
[ -e install.log ] && mv -f install.log install.log.prev
rm -f install.rc install.pid install.collected
date -u +%Y-%m-%dT%H:%M:%SZ >> launches
setsid nohup sh -c 'echo $$ > install.pid; bash ./install.sh "$@" > install.log 2>&1 < /dev/null; echo $? > install.rc.new; mv install.rc.new install.rc' ispagent-install __ARGS__ > /dev/null 2>&1 < /dev/null &
i=0; while [ ! -s install.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
cat install.pid
""".replace("__DIR__", INSTALLER_DIR)


@dataclass(frozen=True)
class InstallStatus:
    running: bool
    rc: int | None
    size: int
    collected: bool
    started: bool = False  # a launch left its pid file

    @property
    def interrupted(self) -> bool:
        """Launched, not running, and no exit status: the server restarted (or install.sh was
        killed) mid-install. Whatever it left is not a finished panel."""
        return self.started and not self.running and self.rc is None


def parse_status(line: str) -> InstallStatus:
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    rc = fields.get("rc", "")
    return InstallStatus(
        fields.get("running") == "1",
        int(rc) if rc.lstrip("-").isdigit() else None,
        int(fields.get("size") or 0),
        fields.get("collected") == "1",
        fields.get("started") == "1",
    )


def remote_status(ctx: HostContext) -> InstallStatus:
    result = ctx.connection.run(_STATUS, log_output=False)
    line = next((l for l in result.stdout.splitlines() if l.startswith("status ")), None)
    if line is None:
        raise InstallerFailed(f"cannot read the install state in {INSTALLER_DIR}: {result.error_line()}", "transport")
    return parse_status(line)


def follow(ctx: HostContext, timeout_s: float, poll_s: float) -> tuple[InstallStatus, str]:
    """Copy the server's install log into the host log until install.sh ends; return its status and output."""
    offset, output = 0, []
    deadline = time.monotonic() + timeout_s
    while True:
        result = ctx.connection.run(
            _STATUS + f'[ "$size" -gt {offset} ] && tail -c +{offset + 1} {LOG} | head -c $((size - {offset}))\nexit 0',
            log_output=False,
        )
        header, _, chunk = result.stdout.partition("\n")
        if not header.startswith("status "):
            raise InstallerFailed(f"cannot read {LOG}: {result.error_line()}", "transport")
        status = parse_status(header)
        if chunk:
            ctx.log.write("|", chunk)
            output.append(chunk)
            offset = status.size
        if not status.running:
            return status, "".join(output)
        if time.monotonic() > deadline:
            raise InstallerFailed(
                f"install.sh still running after {timeout_s / 60:g} min (installer_timeout_minutes): "
                f"left running; its log is {LOG}",
                "timeout",
            )
        time.sleep(poll_s)


def _activation_key(ctx: HostContext) -> str | None:
    license = ctx.state.get(LICENSE)
    key = (license.key if license is not None else None) or ctx.settings.license.activation_key
    if key:
        register_secret(str(key), refuse_short=False)  # before it reaches any command line, log or message
    return str(key) if key else None


def _finish(ctx: HostContext, status: InstallStatus, output: str, how: str) -> StepResult:
    """The outcome of a finished install.sh: the panel must answer license.info, else a classified failure."""
    ctx.connection.run(["touch", f"{INSTALLER_DIR}/install.collected"])
    report = ctx.report.setdefault("installer", {})
    report.update({"exit": status.rc, "log": LOG})
    if status.rc == 0 and ctx.connection.run([MGRCTL, "-m", "ispmgr", "license.info"], log_output=False).ok:
        report.update({"result": "installed", "class": None})
        ctx.state.set(INSTALL, "installed")
        return changed(f"ISPmanager installed ({how}); log {LOG}")
    failure = classify_output(output, status.rc if status.rc is not None else -1)
    return _failed(ctx, failure, f"install.sh exited {status.rc}: {mask(failure_line(output)) or 'no output'}")


def _failed(ctx: HostContext, failure: FailureClass, message: str) -> StepResult:
    ctx.report.setdefault("installer", {}).update(
        {"result": "failed", "class": failure.name, "retry_later": failure.retry_later, "advice": failure.advice}
    )
    return failed(f"{message} [{failure.name}: {failure.advice}]", failure_class=failure.name)


@step("installer", InstallerParams, provides=(INSTALL,), needs=(PREFLIGHT,))
def installer(ctx: HostContext, params: InstallerParams) -> StepResult:
    """Run install.sh (detached, logged on the server) unless a panel is there; reattach on resume."""
    try:
        return _install(ctx, params)
    except InstallerFailed as error:  # timeout, unreadable state: still a classified host result
        return _failed(ctx, FailureClass(error.failure_class, "see the installer log on the server"), str(error))


def _install(ctx: HostContext, params: InstallerParams) -> StepResult:
    settings = ctx.settings.install
    preflight = ctx.state.get(PREFLIGHT)
    if preflight is None:
        return failed("no preflight result: put the preflight step before the installer")
    timeout_s = settings.installer_timeout_minutes * 60
    if ctx.dry_run:
        return _dry_run(ctx, settings, preflight)
    status = remote_status(ctx)
    if status.running:
        ctx.log.write("|", f"install.sh is already running: reattaching to {LOG}")
        return _finish(ctx, *follow(ctx, timeout_s, params.poll_seconds), "reattached to a running install")
    if status.rc is not None and not status.collected:
        return _finish(ctx, *follow(ctx, timeout_s, params.poll_seconds), "finished while ispagent was away")
    if preflight.installed and not status.interrupted:
        ctx.report.setdefault("installer", {}).update({"result": "already installed", "class": ALREADY_INSTALLED.name})
        return skipped(f"panel already installed (licid {preflight.licid}): install.sh not run")
    if status.interrupted:
        ctx.log.write(
            "|",
            "install.sh was cut off before it ended (the server restarted, or it was killed): "
            "running it again with the same license",
        )
    if preflight.facts.dpkg_interrupted and preflight.os_family in ("debian", "ubuntu"):
        _finish_dpkg(ctx)
    command = installer_command(settings, preflight.os_family, _activation_key(ctx))
    for note in command.notes:
        ctx.log.write("|", note)
    script = ctx.services.installer_scripts.fetch(settings.script_url, settings.installer_sha256)
    ctx.connection.put(script, SCRIPT, 0o700, make_parents=True)
    launch = ctx.connection.run(_LAUNCH.replace("__ARGS__", command_line(command.argv)))
    if not launch.ok or not launch.stdout.strip().isdigit():
        raise InstallerFailed(f"cannot start install.sh: {launch.error_line()}", "transport")
    ctx.report["installer"] = {"command": mask(command_line(["bash", "install.sh", *command.argv])), "log": LOG}
    return _finish(ctx, *follow(ctx, timeout_s, params.poll_seconds), f"pid {launch.stdout.strip()}")


def _finish_dpkg(ctx: HostContext) -> None:
    """Replay dpkg's journal, as apt asks to after an interrupted run (install.sh's apt would
    otherwise refuse every package with exit 100)."""
    ctx.log.write("|", "dpkg was interrupted (a reboot mid-install?): running dpkg --configure -a first")
    result = ctx.connection.run(["dpkg", "--configure", "-a"])
    if not result.ok:
        raise InstallerFailed(f"dpkg --configure -a failed: {result.error_line()}", DPKG_INTERRUPTED.name)


def _dry_run(ctx: HostContext, settings: InstallSettings, preflight: Preflight) -> StepResult:
    if preflight.installed:
        return skipped("panel already installed: install.sh would not run")
    if preflight.install_running:
        return changed("would reattach to the install.sh that is running")
    command = installer_command(settings, preflight.os_family, _activation_key(ctx))
    ctx.state.set(INSTALL, "would install")
    return changed(
        f"would run: {mask(command_line(['bash', 'install.sh', *command.argv]))} (from {settings.script_url})"
    )
