"""ispagent schedule: systemd units that `systemd-analyze verify` accepts, an equivalent cron file, removal."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import mutations
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.errors import InputError
from agent.scheduling import check_name, make_job, parse_at, read_env_file, service_unit, systemd_quote

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "reprovision.yaml"
INVENTORY = REPO / "inventory.example.yaml"


def exec_start(service: str) -> list[str]:
    """The ExecStart= words (systemd's quoting is a subset of the shell's for what we write, % and $ aside)."""
    line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    words = [word.replace("%%", "%") for word in shlex.split(line.removeprefix("ExecStart="))]
    return words[:1] + [word.replace("$$", "$") for word in words[1:]]  # the executable is not $-expanded


def verify(*units: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: .ci/setup installs Debian's systemd package"
    return subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60)


def test_units_pass_systemd_analyze_verify_and_run_the_playbook_quietly(tmp_path):
    odd = tmp_path / "my 50% $fleet.yaml"
    odd.write_text(INVENTORY.read_text())
    result = CliRunner().invoke(
        cli,
        [
            "schedule",
            "add",
            str(PLAYBOOK),
            "-i",
            str(odd),
            "--name",
            "fleet",
            "--unit-dir",
            str(tmp_path),
            "--only-drifted",
            "--at",
            "3:05",
            "--metrics-file",
            str(tmp_path / "m.prom"),
        ],
    )
    assert result.exit_code == 0, result.output
    service, timer = tmp_path / "ispagent-fleet.service", tmp_path / "ispagent-fleet.timer"
    checked = verify(service, timer)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr
    argv = exec_start(service.read_text())
    assert argv[1:] == [
        "run",
        str(PLAYBOOK),
        "-i",
        str(odd),
        "-q",
        "--only-drifted",
        "--metrics-file",
        str(tmp_path / "m.prom"),
    ]
    timer_text = timer.read_text()
    assert "OnCalendar=*-*-* 03:05:00" in timer_text and "RandomizedDelaySec=3600" in timer_text
    assert "ExecStopPost=" in service.read_text() and "runs prune --keep 30" in service.read_text()


def test_verify_catches_a_unit_that_names_a_missing_ispagent_or_a_bad_setting(tmp_path):
    job = make_job("x", Path(shutil.which("sh")), PLAYBOOK, INVENTORY, "02:30")
    broken = tmp_path / "ispagent-x.service"
    broken.write_text(service_unit(job).replace(str(job.ispagent), "/nonexistent/ispagent"))
    checked = verify(broken)
    assert checked.returncode != 0 and "is not executable" in checked.stderr
    broken.write_text(service_unit(job).replace("Type=oneshot", "Type=oneshoot"))
    assert "Failed to parse service type" in verify(broken).stderr


def test_cron_file_runs_the_same_command_with_delay_env_file_and_prune(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "schedule",
            "add",
            str(PLAYBOOK),
            "-i",
            str(INVENTORY),
            "--cron",
            "--cron-dir",
            str(tmp_path),
            "--random-delay",
            "10",
            "--keep-runs",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "ispagent-nightly").read_text()
    line = text.splitlines()[-1]
    assert line.startswith("30 2 * * * root sleep $(shuf -i 0-600 -n 1); ")
    assert "schedule exec --env-file /etc/ispagent/nightly.env --state-dir /var/lib/ispagent --" in line
    assert f"run {PLAYBOOK} -i {INVENTORY} -q" in line and "runs prune --keep 5" in line
    sh = subprocess.run(["sh", "-n", "-c", line.split(" root ", 1)[1]], capture_output=True, text=True)
    assert sh.returncode == 0, sh.stderr


def test_remove_deletes_only_files_schedule_wrote(tmp_path):
    runner = CliRunner()
    runner.invoke(cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--unit-dir", str(tmp_path)])
    foreign = tmp_path / "ispagent-other.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    result = runner.invoke(
        cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--name", "other", "--unit-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "was not written by ispagent schedule" in result.output
    result = runner.invoke(
        cli, ["schedule", "remove", "nightly", "--unit-dir", str(tmp_path), "--cron-dir", str(tmp_path)]
    )
    assert result.exit_code == 0 and "removed" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ispagent-other.service"]
    runner.invoke(cli, ["schedule", "remove", "other", "--unit-dir", str(tmp_path), "--cron-dir", str(tmp_path)])
    assert foreign.exists()


def test_print_writes_nothing_and_shows_the_three_forms(tmp_path):
    result = CliRunner().invoke(
        cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--print", "--unit-dir", str(tmp_path)]
    )
    assert result.exit_code == 0 and list(tmp_path.iterdir()) == []
    assert "### service" in result.output and "### timer" in result.output and "### cron" in result.output


@pytest.mark.parametrize(
    "word, quoted",
    [("/usr/bin/ispagent", "/usr/bin/ispagent"), ("a b", '"a b"'), ("50%", "50%%"), ('x"$y', '"x\\"$$y"')],
)
def test_systemd_quote(word, quoted):
    assert systemd_quote(word) == quoted


def _mutated(example: str):
    return st.tuples(
        st.integers(0, len(example)),
        st.sampled_from(["replace", "insert", "delete"]),
        st.sampled_from(list("0123456789:. -aZ\n%$") + ["24", "60", "::"]),
    ).map(lambda m: example[: m[0]] + ("" if m[1] == "delete" else m[2]) + example[m[0] + (m[1] != "insert") :])


@settings(max_examples=200, deadline=None)
@given(text=_mutated("02:30"))
def test_mutated_times_parse_to_a_valid_time_or_fail_with_one_line(text):
    try:
        at = parse_at(text)
    except InputError as error:
        assert "\n" not in str(error) and "HH:MM" in str(error)
        return
    assert 0 <= at.hour <= 23 and 0 <= at.minute <= 59
    assert at.on_calendar() == f"*-*-* {at.hour:02d}:{at.minute:02d}:00"


@settings(max_examples=200, deadline=None)
@given(text=_mutated("nightly"))
def test_mutated_names_are_safe_unit_names_or_fail_with_one_line(text):
    try:
        name = check_name(text)
    except InputError as error:
        assert "\n" not in str(error)
        return
    assert systemd_quote(f"ispagent-{name}.service") == f"ispagent-{name}.service"  # nothing to quote


# --- mutations of the shipped examples (issue 20, Build 8): docs/schedule.md's `schedule add` and ispagent.env.example

SERVICE_KEYS = {
    "Description",
    "Wants",
    "After",
    "Type",
    "Environment",
    "EnvironmentFile",
    "ExecStart",
    "ExecStopPost",
    "KillMode",
    "TimeoutStopSec",
}
TIMER_KEYS = {"Description", "OnCalendar", "RandomizedDelaySec", "Persistent", "WantedBy"}
EXAMPLE_SECRETS = ("change-me-partner-password", "change-me-ledger-password")
MUTATED = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mutated_example(draw, kind: str, limit: int = 256 * 1024) -> bytes:
    """A shipped example damaged by the harness's one mutator (tests/harness/mutations.py)."""
    return mutations.mutated(draw(st.randoms(use_true_random=False)), mutations.originals(kind)[0], kind, limit)


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")} if root.exists() else set()


def _ends_in_one_error_line(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code:
        assert result.exit_code == 2, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith(("ispagent: error: ", "Error: ")), result.output
        assert all(secret not in result.output for secret in EXAMPLE_SECRETS), result.output


def _unit_keys(text: str) -> list[str]:
    return [line.split("=", 1)[0] for line in text.splitlines() if line and line[0] not in "#[" and "=" in line]


@pytest.fixture(scope="module")
def schedule_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedule")
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    shutil.copy(INVENTORY, root / "fleet.yaml")
    return root


@MUTATED
@given(words=mutated_example("schedule"), cron=st.booleans())
def test_mutated_schedule_add_options_write_one_job_or_fail_in_one_line_writing_nothing(
    schedule_dir, words, cron, monkeypatch
):
    monkeypatch.chdir(schedule_dir)
    words = words.replace(b"/etc/ispagent/fleet.yaml", b"fleet.yaml").replace(b"\x00", b"")  # execve: no NUL in argv
    argv = [os.fsdecode(word) for word in words.split(b"\n")]
    units, crons = schedule_dir / "units", schedule_dir / "cron"
    shutil.rmtree(units, ignore_errors=True), shutil.rmtree(crons, ignore_errors=True)
    before, system = _tree(schedule_dir), (_tree(Path("/etc/systemd/system")), _tree(Path("/etc/cron.d")))
    result = CliRunner().invoke(
        cli,
        ["schedule", "add", *argv, *(["--cron"] if cron else []), "--unit-dir", str(units), "--cron-dir", str(crons)],
    )
    _ends_in_one_error_line(result)
    event(f"exit {result.exit_code}")
    written = _tree(schedule_dir) - before
    assert (_tree(Path("/etc/systemd/system")), _tree(Path("/etc/cron.d"))) == system
    assert written <= {
        "units",
        "units/ispagent-nightly.service",
        "units/ispagent-nightly.timer",
        "cron",
        "cron/ispagent-nightly",
    } | {w for w in written if w.startswith(("units/", "cron/"))}, written
    if result.exit_code or not written:
        assert not written, (argv, written)
        return
    for path in units.glob("*.service"):  # each directive once, none a value made up
        keys = _unit_keys(path.read_text())
        assert set(keys) <= SERVICE_KEYS and len(keys) == len(set(keys)), keys
        assert exec_start(path.read_text())[1:3] == ["run", str(schedule_dir / "playbooks" / "reprovision.yaml")]
    for path in units.glob("*.timer"):
        keys = _unit_keys(path.read_text())
        assert set(keys) <= TIMER_KEYS and len(keys) == len(set(keys)), keys
    for path in crons.glob("*"):
        jobs = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert len(jobs) == 3 and jobs[:2] == ["SHELL=/bin/sh", jobs[1]] and jobs[1].startswith("PATH="), jobs


@MUTATED
@given(text=mutated_example("env"))
def test_a_mutated_env_file_reads_as_plain_key_values_or_is_one_line_that_shows_no_value(tmp_path_factory, text):
    env_file = tmp_path_factory.mktemp("env") / "job.env"
    env_file.write_bytes(text)
    env_file.chmod(0o600)
    try:
        values = read_env_file(env_file)
    except InputError as error:
        event("refused")
        assert len(str(error).splitlines()) == 1 and str(error).startswith(str(env_file))
        assert all(secret not in str(error) for secret in EXAMPLE_SECRETS), str(error)
        return
    for key, value in values.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), key
        assert not any(char in value for char in "\\'\"\n\r\x00"), value  # what systemd and a shell read alike
    result = CliRunner().invoke(
        cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--env-file", str(env_file), "--print"]
    )
    assert result.exit_code == 0, result.output
    assert all(secret not in result.output for secret in EXAMPLE_SECRETS)
