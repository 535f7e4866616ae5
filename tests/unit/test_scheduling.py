"""ispagent schedule: systemd units that `systemd-analyze verify` accepts, an equivalent cron file, removal."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.errors import InputError
from agent.scheduling import check_name, make_job, parse_at, service_unit, systemd_quote

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
    result = CliRunner().invoke(cli, ["schedule", "add", str(PLAYBOOK), "-i", str(odd), "--name", "fleet",
                                      "--unit-dir", str(tmp_path), "--only-drifted", "--at", "3:05",
                                      "--metrics-file", str(tmp_path / "m.prom")])
    assert result.exit_code == 0, result.output
    service, timer = tmp_path / "ispagent-fleet.service", tmp_path / "ispagent-fleet.timer"
    checked = verify(service, timer)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr
    argv = exec_start(service.read_text())
    assert argv[1:] == ["run", str(PLAYBOOK), "-i", str(odd), "-q", "--only-drifted", "--metrics-file",
                        str(tmp_path / "m.prom")]
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
    result = CliRunner().invoke(cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--cron",
                                      "--cron-dir", str(tmp_path), "--random-delay", "10", "--keep-runs", "5"])
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
    result = runner.invoke(cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--name", "other",
                                 "--unit-dir", str(tmp_path)])
    assert result.exit_code == 2 and "was not written by ispagent schedule" in result.output
    result = runner.invoke(cli, ["schedule", "remove", "nightly", "--unit-dir", str(tmp_path), "--cron-dir", str(tmp_path)])
    assert result.exit_code == 0 and "removed" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ispagent-other.service"]
    runner.invoke(cli, ["schedule", "remove", "other", "--unit-dir", str(tmp_path), "--cron-dir", str(tmp_path)])
    assert foreign.exists()


def test_print_writes_nothing_and_shows_the_three_forms(tmp_path):
    result = CliRunner().invoke(cli, ["schedule", "add", str(PLAYBOOK), "-i", str(INVENTORY), "--print",
                                      "--unit-dir", str(tmp_path)])
    assert result.exit_code == 0 and list(tmp_path.iterdir()) == []
    assert "### service" in result.output and "### timer" in result.output and "### cron" in result.output


@pytest.mark.parametrize("word, quoted", [("/usr/bin/ispagent", "/usr/bin/ispagent"), ("a b", '"a b"'),
                                          ("50%", "50%%"), ('x"$y', '"x\\"$$y"')])
def test_systemd_quote(word, quoted):
    assert systemd_quote(word) == quoted


def _mutated(example: str):
    return st.tuples(st.integers(0, len(example)), st.sampled_from(["replace", "insert", "delete"]),
                     st.sampled_from(list("0123456789:. -aZ\n%$") + ["24", "60", "::"])).map(
        lambda m: example[:m[0]] + ("" if m[1] == "delete" else m[2]) + example[m[0] + (m[1] != "insert"):])


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
