"""Scheduled runs: a systemd service + timer pair, or an equivalent cron line, that runs a playbook nightly.

The job runs `ispagent run -q` (only the summary: cron mails what a job prints) with the state
directory in its environment and secrets (partner credentials, a ledger URL with a password) in an
optional root-only environment file, never in the unit. One run at a time: the timer never starts
the service while it runs, and ispagent's own inventory lock refuses a second run (exit 3), which is
what guards the cron line. After each run old journals are pruned (`runs prune --keep N`), resumable
ones kept. The timer waits a random delay so a fleet of agents does not hit the partner account at once.

Every value that reaches a unit or the cron line is checked here (no control character, no
backslash, UTF-8, absolute) and quoted for the place it goes: an Exec line, `Environment=`,
`EnvironmentFile=`, `Description=`, a crontab command. The env file has one meaning in both modes:
systemd reads it as KEY=VALUE lines, and the cron line hands it to `ispagent schedule exec`, which
reads it with the same rules (`read_env_file`), never as shell code.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InputError
from agent.inputfile import read_input_file
from agent.secrets import shown

MARKER = "# Written by `ispagent schedule add`"
DEFAULT_STATE_DIR = Path("/var/lib/ispagent")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_AT = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
# EnvironmentFile= takes no quoting: systemd silently skips a file whose name it cannot take as written.
_ENV_FILE_PLAIN = re.compile(r"^/[A-Za-z0-9_@+=:,./-]+$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DESCRIPTION_PLAIN = re.compile(r"[A-Za-z0-9 _@+=:,./()-]")


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
        raise InputError(
            f"--name {name!r}: use 1-48 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
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

    def with_environment(self, argv: list[str]) -> list[str]:
        """`argv` run by `ispagent schedule exec`: the env file read as systemd reads it (the cron line's way)."""
        return [
            str(self.ispagent),
            "schedule",
            "exec",
            "--env-file",
            str(self.environment_file),
            "--state-dir",
            str(self.state_dir),
            "--",
            *argv,
        ]


def path_problem(text: str) -> str | None:
    """Why `text` cannot be written into a unit or a cron line as it is, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8, which a unit file cannot hold"
    for char in text:
        if ord(char) < 32 or 0x7F <= ord(char) <= 0x9F or char in "\u2028\u2029":
            return f"holds the control character U+{ord(char):04X}, which would end or split a unit or cron line"
        if char == "\\":
            return "holds a backslash, which systemd and cron read as an escape"
    return None


def checked_path(label: str, path: Path | str) -> Path:
    """`path` made absolute, refused in one InputError line when a unit or a cron line cannot carry it."""
    text = os.fsdecode(path)
    problem = path_problem(text)
    if problem:
        raise InputError(f"{label} {shown(text)} {problem}; rename it or choose another path")
    return Path(os.path.abspath(text))


def checked_env_file(path: Path | str) -> Path:
    """The env file's path, absolute and plain: systemd's EnvironmentFile= cannot quote, and skips what it cannot read."""
    absolute = checked_path("--env-file", path)
    if not _ENV_FILE_PLAIN.fullmatch(str(absolute)):
        raise InputError(
            f"--env-file {shown(str(absolute))}: systemd's EnvironmentFile= cannot take a space, '$', '%' "
            "or quotes in a file name; use a path of letters, digits and _@+=:,./-"
        )
    return absolute


def make_job(
    name: str,
    ispagent: Path,
    playbook: Path,
    inventory: Path,
    at: str,
    *,
    random_delay_minutes: int = 60,
    state_dir: Path | None = None,
    env_file: Path | None = None,
    keep_runs: int = 30,
    run_options: tuple[str, ...] = (),
) -> ScheduledJob:
    """A checked job: the name, the time, the files it names (which must exist now) and every value it writes.

    An env file that exists is read now with the rules the job will read it with: what systemd and
    `schedule exec` could take differently is refused here, not found missing at 02:30.
    """
    files = {
        label: _existing_file(label, path)
        for label, path in (("playbook", playbook), ("inventory", inventory), ("ispagent", ispagent))
    }
    if not 0 <= random_delay_minutes <= 24 * 60:
        raise InputError(f"--random-delay {random_delay_minutes}: give 0 to 1440 minutes")
    for word in run_options:
        checked_path("run option", word)
    checked_env = checked_env_file(env_file) if env_file is not None else None
    job = ScheduledJob(
        name=check_name(name),
        ispagent=checked_path("ispagent", files["ispagent"]),
        playbook=files["playbook"],
        inventory=files["inventory"],
        at=parse_at(at),
        random_delay_minutes=random_delay_minutes,
        state_dir=checked_path("--state-dir", state_dir or DEFAULT_STATE_DIR),
        env_file=checked_env,
        keep_runs=keep_runs,
        run_options=tuple(run_options),
    )
    if checked_env is not None and checked_env.exists():
        read_env_file(checked_env)
    return job


def _existing_file(label: str, path: Path | str) -> Path:
    checked_path(label, path)
    if not Path(path).is_file():
        raise InputError(f"{shown(os.fsdecode(path))}: no such {label} file")
    return checked_path(label, Path(path).resolve()) if label != "ispagent" else Path(path)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them, limited to what both readers agree on.

    Blank lines and lines starting with # or ; are skipped; spaces around the `=` and at the end go;
    a value may be wrapped whole in '...' or "...". `$` and `;` are plain characters (no expansion,
    no shell). Refused, in one line with the line number: backslashes (escapes and continued lines,
    which systemd and a shell read differently), quotes inside a value, control characters, keys
    that are not names, text that is not UTF-8.
    """
    text = read_input_file(path, InputError, what="env file")
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip(" \t\r")
        if not stripped or stripped[0] in "#;":
            continue
        key, value = _env_line(stripped, f"{path}:{number}")
        values[key] = value
    return values


def _env_line(line: str, where: str) -> tuple[str, str]:
    key, sep, value = line.partition("=")
    key, value = key.rstrip(" \t"), value.strip(" \t")
    if not sep or not _ENV_KEY.fullmatch(key):
        # The line is not echoed: it may hold a secret written the wrong way.
        raise InputError(f"{where}: expected KEY=VALUE, KEY a name of letters, digits and _")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    if any(char in value for char in "\\'\""):
        raise InputError(
            f"{where}: {key}: backslashes and quotes inside a value are read differently by systemd "
            "and a shell; wrap the whole value in '...' and leave them out"
        )
    if any(ord(char) < 32 or ord(char) == 0x7F for char in value):
        raise InputError(f"{where}: {key}: the value holds a control character; remove it")
    return key, value


def job_environment(env_file: Path, state_dir: Path, base: dict[str, str]) -> dict[str, str]:
    """What a scheduled run's environment is under systemd: `base`, the state dir, then the env file over both."""
    values = read_env_file(env_file) if env_file.exists() else {}  # optional, like EnvironmentFile=-
    return {**base, "ISPAGENT_STATE_DIR": str(state_dir), **values}


def systemd_quote(word: str, *, executable: bool = False) -> str:
    """One word of an Exec*= line, as systemd splits them (% and $ are its specifiers there).

    The executable's path is not variable-expanded: a `$$` in it would stay `$$`.
    """
    escaped = word.replace("%", "%%") if executable else word.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.fullmatch(word):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment_quote(assignment: str) -> str:
    """One KEY=VALUE of an Environment= line: % is a specifier there, but `$` is not expanded (no $$)."""
    return '"' + assignment.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"') + '"'


def _description(text: str) -> str:
    """A file name for Description=: only for people, so anything a unit line could read specially becomes '?'."""
    return "".join(char if _DESCRIPTION_PLAIN.fullmatch(char) else "?" for char in text)


def _systemd_line(argv: list[str]) -> str:
    return " ".join(systemd_quote(word, executable=index == 0) for index, word in enumerate(argv))


def service_unit(job: ScheduledJob) -> str:
    return f"""{MARKER} for job {job.name}; remove with: ispagent schedule remove {job.name}
# Secrets (ISPAGENT_PARTNER_AUTHINFO, ISPAGENT_LEDGER_URL with its password) go in
# {job.environment_file} (mode 0600), never here. Exit codes: 0 ok, 1 hosts failed, 3 another run holds
# the inventory's lock, 4 activations not yet confirmed by the partner account (retried next run).
[Unit]
Description=ispagent {job.name}: {_description(job.playbook.name)} over {_description(job.inventory.name)}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment={environment_quote(f"ISPAGENT_STATE_DIR={job.state_dir}")}
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
    # An unescaped % ends a crontab command; `\%` is safe because no value holds a backslash (path_problem).
    return text.replace("%", "\\%")


def cron_file(job: ScheduledJob) -> str:
    """An /etc/cron.d file (with its user field): the same job as the timer pair.

    Both commands go through `ispagent schedule exec`, which reads the env file as systemd does:
    sourcing it with `.` made a `$$` in a password a PID and a `;cmd` a command.
    """
    delay = job.random_delay_minutes * 60
    run, prune = shlex.join(job.with_environment(job.run_argv())), shlex.join(job.with_environment(job.prune_argv()))
    command = (f"sleep $(shuf -i 0-{delay} -n 1); " if delay else "") + f"{run}; rc=$?; {prune} >/dev/null; exit $rc"
    return f"""{MARKER} for job {job.name}; remove with: ispagent schedule remove {job.name}
# Secrets go in {job.environment_file} (mode 0600). A run still going when the next starts: ispagent's
# inventory lock refuses the second one (exit 3, mailed).
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
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

    wanted = (
        [(files.cron, cron_file(job))] if cron else [(files.service, service_unit(job)), (files.timer, timer_unit(job))]
    )
    for path, _ in wanted:
        if path.exists() and not path.read_text(errors="replace").startswith(MARKER):
            raise InputError(
                f"{path} exists and was not written by ispagent schedule: remove it or pick another --name"
            )
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
