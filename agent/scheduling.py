"""Scheduled runs: a systemd service + timer pair, or an equivalent cron line, that runs a playbook nightly.

The job runs `ispagent run -q` (only the summary: cron mails what a job prints) with the state
directory in its environment and secrets (partner credentials, a ledger URL with a password) in an
optional root-only environment file, never in the unit. One run at a time: the timer never starts
the service while it runs, and ispagent's own inventory lock refuses a second run (exit 3), which is
what guards the cron line. After each run old journals are pruned (`runs prune --keep N`), resumable
ones kept. The timer waits a random delay so a fleet of agents does not hit the partner account at once.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InputError

MARKER = "# Written by `ispagent schedule add`"
DEFAULT_STATE_DIR = Path("/var/lib/ispagent")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_AT = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class DailyTime:
    hour: int
    minute: int

    def on_calendar(self) -> str:
        return f"*-*-* {self.hour:02d}:{self.minute:02d}:00"

    def cron(self) -> str:
        return f"{self.minute} {self.hour} * * *"


def parse_at(text: str) -> DailyTime:
    """`HH:MM` (24-hour) as a DailyTime; anything else is one InputError line."""
    match = _AT.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InputError(f"--at {text!r}: write the daily time as HH:MM, 24-hour (e.g. 02:30)")
    return DailyTime(int(match.group(1)), int(match.group(2)))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"--name {name!r}: use 1-48 lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class ScheduledJob:
    """What to run and when; the paths are absolute (a unit has no working directory of ours)."""

    name: str
    ispagent: Path
    playbook: Path
    inventory: Path
    at: DailyTime
    random_delay_minutes: int = 60
    state_dir: Path = DEFAULT_STATE_DIR
    env_file: Path | None = None
    keep_runs: int = 30
    run_options: tuple[str, ...] = ()  # e.g. ("--only-drifted", "--metrics-file", "/var/lib/...prom")

    @property
    def unit(self) -> str:
        return f"ispagent-{self.name}"

    @property
    def environment_file(self) -> Path:
        return self.env_file or Path("/etc/ispagent") / f"{self.name}.env"

    def run_argv(self) -> list[str]:
        return [str(self.ispagent), "run", str(self.playbook), "-i", str(self.inventory), "-q", *self.run_options]

    def prune_argv(self) -> list[str]:
        return [str(self.ispagent), "runs", "prune", "--keep", str(self.keep_runs)]


def make_job(name: str, ispagent: Path, playbook: Path, inventory: Path, at: str, *, random_delay_minutes: int = 60,
             state_dir: Path | None = None, env_file: Path | None = None, keep_runs: int = 30,
             run_options: tuple[str, ...] = ()) -> ScheduledJob:
    """A checked job: the name, the time and the files it names (which must exist now)."""
    for label, path in (("playbook", playbook), ("inventory", inventory), ("ispagent", ispagent)):
        if any(ord(char) < 32 or char == "\x7f" for char in str(path)):
            raise InputError(f"{label} path {str(path)!r} has a control character: a unit or cron line cannot hold it")
        if not Path(path).is_file():
            raise InputError(f"{path}: no such {label} file")
    if not 0 <= random_delay_minutes <= 24 * 60:
        raise InputError(f"--random-delay {random_delay_minutes}: give 0 to 1440 minutes")
    return ScheduledJob(
        name=check_name(name), ispagent=Path(ispagent).absolute(), playbook=Path(playbook).resolve(),
        inventory=Path(inventory).resolve(), at=parse_at(at), random_delay_minutes=random_delay_minutes,
        state_dir=Path(state_dir or DEFAULT_STATE_DIR).absolute(), env_file=env_file, keep_runs=keep_runs,
        run_options=tuple(run_options),
    )


def systemd_quote(word: str) -> str:
    """One word of an Exec*= or Environment= line, as systemd splits them (% and $ are its specifiers)."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.fullmatch(word):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _systemd_line(argv: list[str]) -> str:
    return " ".join(systemd_quote(word) for word in argv)


def service_unit(job: ScheduledJob) -> str:
    return f"""{MARKER} for job {job.name}; remove with: ispagent schedule remove {job.name}
# Secrets (ISPAGENT_PARTNER_AUTHINFO, ISPAGENT_LEDGER_URL with its password) go in
# {job.environment_file} (mode 0600), never here. Exit codes: 0 ok, 1 hosts failed, 3 another run holds
# the inventory's lock, 4 activations not yet confirmed by the partner account (retried next run).
[Unit]
Description=ispagent {job.name}: {_specifiers(job.playbook.name)} over {_specifiers(job.inventory.name)}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment={systemd_quote(f"ISPAGENT_STATE_DIR={job.state_dir}")}
EnvironmentFile=-{systemd_quote(str(job.environment_file))}
ExecStart={_systemd_line(job.run_argv())}
ExecStopPost={_systemd_line(job.prune_argv())}
# SIGTERM (systemctl stop, shutdown) journals the run as interrupted: finish it with ispagent run --resume.
KillMode=mixed
TimeoutStopSec=120
"""


def timer_unit(job: ScheduledJob) -> str:
    return f"""{MARKER} for job {job.name}; remove with: ispagent schedule remove {job.name}
[Unit]
Description=Daily ispagent {job.name} at {job.at.hour:02d}:{job.at.minute:02d}

[Timer]
OnCalendar={job.at.on_calendar()}
RandomizedDelaySec={job.random_delay_minutes * 60}
Persistent=true

[Install]
WantedBy=timers.target
"""


def _cron_escape(text: str) -> str:
    return text.replace("%", "\\%")  # an unescaped % ends a crontab command


def cron_file(job: ScheduledJob) -> str:
    """An /etc/cron.d file (with its user field): the same job as the timer pair."""
    env = shlex.quote(str(job.environment_file))
    delay = job.random_delay_minutes * 60
    command = (
        (f"sleep $(shuf -i 0-{delay} -n 1); " if delay else "")
        + f"if [ -r {env} ]; then set -a; . {env}; set +a; fi; "
        + f"{shlex.join(job.run_argv())}; rc=$?; {shlex.join(job.prune_argv())} >/dev/null; exit $rc"
    )
    return f"""{MARKER} for job {job.name}; remove with: ispagent schedule remove {job.name}
# Secrets go in {job.environment_file} (mode 0600). A run still going when the next starts: ispagent's
# inventory lock refuses the second one (exit 3, mailed).
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ISPAGENT_STATE_DIR={job.state_dir}
{job.at.cron()} root {_cron_escape(command)}
"""


@dataclass(frozen=True)
class ScheduleFiles:
    service: Path
    timer: Path
    cron: Path


def schedule_files(name: str, unit_dir: Path, cron_dir: Path) -> ScheduleFiles:
    unit = f"ispagent-{check_name(name)}"
    return ScheduleFiles(unit_dir / f"{unit}.service", unit_dir / f"{unit}.timer", cron_dir / unit)


def install_job(job: ScheduledJob, files: ScheduleFiles, *, cron: bool) -> list[Path]:
    """Write the timer pair (or the cron file); returns what was written. Foreign files are not overwritten."""
    from agent.atomicfile import write_atomic

    wanted = [(files.cron, cron_file(job))] if cron else [(files.service, service_unit(job)), (files.timer, timer_unit(job))]
    for path, _ in wanted:
        if path.exists() and not path.read_text(errors="replace").startswith(MARKER):
            raise InputError(f"{path} exists and was not written by ispagent schedule: remove it or pick another --name")
    for path, text in wanted:
        write_atomic(path, text.encode(), 0o644)
    return [path for path, _ in wanted]


def remove_job(files: ScheduleFiles) -> list[Path]:
    """Remove the files `install_job` wrote for this name; returns them. Files of others are left."""
    removed = []
    for path in (files.service, files.timer, files.cron):
        if path.exists() and path.read_text(errors="replace").startswith(MARKER):
            path.unlink()
            removed.append(path)
    return removed
