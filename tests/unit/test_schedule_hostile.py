"""schedule add: no value changes what a unit or a cron line means, and the env file means one thing in both modes.

Each refusal is one line and exit 2, with nothing written; what is taken is checked the way it will
be read: `systemd-analyze verify` for the units, and the cron line run by /bin/sh for the cron file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_scheduling import INVENTORY, PLAYBOOK, exec_start, verify

from agent.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def add(tmp_path, *options, playbook=PLAYBOOK, inventory=INVENTORY):
    return CliRunner().invoke(
        cli,
        [
            "schedule",
            "add",
            str(playbook),
            "-i",
            str(inventory),
            "--unit-dir",
            str(tmp_path / "units"),
            "--cron-dir",
            str(tmp_path / "cron"),
            *options,
        ],
    )


def refused_in_one_line(result, tmp_path) -> str:
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.output
    assert not (tmp_path / "units").exists() and not (tmp_path / "cron").exists()
    return lines[0]


INJECTED = "\n* * * * * root touch /tmp/pwned\nExecStartPre=/bin/touch /tmp/pwned"


@pytest.mark.parametrize("option", ["--metrics-file", "--report-html", "--state-dir", "--env-file"])
@pytest.mark.parametrize("cron", [False, True])
def test_a_line_break_in_any_path_option_is_refused(tmp_path, option, cron):
    value = f"/var/lib/x.prom{INJECTED}"
    line = refused_in_one_line(add(tmp_path, option, value, *(["--cron"] if cron else [])), tmp_path)
    assert "control character U+000A" in line and "/tmp/pwned" not in line.split("'")[0]


@pytest.mark.parametrize(
    "name, why",
    [
        ("end\\", "backslash"),
        ("a\\%b", "backslash"),
        ("tab\there", "U+0009"),
        ("esc\x1b[31m", "U+001B"),
        ("nel\x85", "U+0085"),
    ],
)
def test_a_playbook_name_a_unit_or_cron_line_cannot_hold_is_refused(tmp_path, name, why):
    playbook = tmp_path / f"{name}.yaml"
    playbook.write_text(PLAYBOOK.read_text())
    assert why in refused_in_one_line(add(tmp_path, playbook=playbook), tmp_path)


def test_a_path_that_is_not_utf8_ends_in_one_line_not_a_traceback(tmp_path):
    playbook = os.path.join(os.fsencode(tmp_path), b"\xff.yaml")
    Path(os.fsdecode(playbook)).write_text(PLAYBOOK.read_text())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "schedule",
            "add",
            playbook,
            "-i",
            str(INVENTORY),
            "--unit-dir",
            str(tmp_path / "units"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "not UTF-8" in done.stderr


@pytest.mark.parametrize(
    "env_file",
    [
        "rel/job.env",
        "/etc/ispagent/my job.env",
        "/etc/ispagent/$job.env",
        "/etc/ispagent/50%.env",
        "/etc/ispagent/'q'.env",
    ],
)
def test_an_env_file_systemd_would_skip_is_refused_or_made_absolute(tmp_path, env_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = add(tmp_path, "--env-file", env_file)
    if env_file.startswith("rel/"):  # relative: made absolute, as systemd needs
        assert result.exit_code == 0, result.output
        assert (
            f"EnvironmentFile=-{tmp_path}/rel/job.env\n"
            in (tmp_path / "units" / "ispagent-nightly.service").read_text()
        )
        return
    assert "EnvironmentFile=" in refused_in_one_line(result, tmp_path)


ODD = "my 50% $fleet ;`id` 'q\".yaml"


def odd_files(tmp_path) -> tuple[Path, Path, Path]:
    odd = tmp_path / "in put" / ODD
    odd.parent.mkdir()
    odd.write_text(INVENTORY.read_text())
    state = tmp_path / "st $HOME 100%"
    recorder = tmp_path / "bin" / "isp agent$"
    recorder.parent.mkdir()
    recorder.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(tmp_path / 'argv.jsonl')!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
    )
    recorder.chmod(0o755)
    return odd, state, recorder


def test_odd_values_give_units_systemd_verifies_with_the_exact_argv_and_state_dir(tmp_path):
    odd, state, recorder = odd_files(tmp_path)
    result = add(
        tmp_path,
        "--name",
        "fleet",
        "--state-dir",
        str(state),
        "--metrics-file",
        str(tmp_path / "m 5%.prom"),
        "--ispagent",
        str(recorder),
        inventory=odd,
    )
    assert result.exit_code == 0, result.output
    service, timer = tmp_path / "units" / "ispagent-fleet.service", tmp_path / "units" / "ispagent-fleet.timer"
    checked = verify(service, timer)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr
    text = service.read_text()
    assert exec_start(text) == [
        str(recorder),
        "run",
        str(PLAYBOOK),
        "-i",
        str(odd),
        "-q",
        "--metrics-file",
        str(tmp_path / "m 5%.prom"),
    ]
    # Environment= expands % (so %%) but not $: a doubled $ would reach the run as $$.
    assert f'Environment="ISPAGENT_STATE_DIR={str(state).replace("%", "%%")}"\n' in text
    description = next(line for line in text.splitlines() if line.startswith("Description="))
    assert "\\" not in description and "$" not in description and "%%" not in description.replace("%%", "")


def test_the_cron_line_run_by_hand_runs_exactly_the_intended_argv(tmp_path):
    odd, state, recorder = odd_files(tmp_path)
    env_file = tmp_path / "job.env"
    result = add(
        tmp_path,
        "--cron",
        "--random-delay",
        "0",
        "--state-dir",
        str(state),
        "--env-file",
        str(env_file),
        "--report-html",
        str(tmp_path / "r 5%.html"),
        "--ispagent",
        str(recorder),
        inventory=odd,
    )
    assert result.exit_code == 0, result.output
    entry = (tmp_path / "cron" / "ispagent-nightly").read_text().splitlines()[-1]
    command = entry.split(" root ", 1)[1].replace("\\%", "%")  # what cron hands to /bin/sh
    subprocess.run(["/bin/sh", "-c", command], check=False, timeout=60)
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    head = [str(recorder), "schedule", "exec", "--env-file", str(env_file), "--state-dir", str(state), "--"]
    assert calls == [
        head
        + [str(recorder), "run", str(PLAYBOOK), "-i", str(odd), "-q", "--report-html", str(tmp_path / "r 5%.html")],
        head + [str(recorder), "runs", "prune", "--keep", "30"],
    ]


ENV_TEXT = """\
# partner credentials for the nightly job
ISPAGENT_PARTNER_AUTHINFO=partner@example.com:pa$$word;touch /tmp/pwned-by-env
ISPAGENT_LEDGER_URL = 'postgresql+psycopg://u:p$1%x@db/ledger'
; a systemd comment
SPACED="two words"
ISPAGENT_STATE_DIR=/srv/state $HOME
"""


def test_schedule_exec_reads_the_env_file_literally_as_systemd_does(tmp_path):
    env_file = tmp_path / "job.env"
    env_file.write_text(ENV_TEXT)
    env_file.chmod(0o600)
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "schedule",
            "exec",
            "--env-file",
            str(env_file),
            "--state-dir",
            "/x",
            "--",
            sys.executable,
            "-c",
            dump,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": "/root"},
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    assert env["ISPAGENT_PARTNER_AUTHINFO"] == "partner@example.com:pa$$word;touch /tmp/pwned-by-env"
    assert env["ISPAGENT_LEDGER_URL"] == "postgresql+psycopg://u:p$1%x@db/ledger"
    assert (
        env["SPACED"] == "two words" and env["ISPAGENT_STATE_DIR"] == "/srv/state $HOME"
    )  # the file wins, as in systemd
    assert not Path("/tmp/pwned-by-env").exists()


@pytest.mark.parametrize(
    "line, why",
    [
        ("A=back\\slash", "backslash"),
        ("A='half", "quotes"),
        ("A=x\\", "backslash"),
        ("export A=1", "KEY=VALUE"),
        ('A=a"b"c', "quotes"),
        ("just text", "KEY=VALUE"),
    ],
)
def test_an_env_file_the_two_readers_could_read_differently_is_refused_at_add(tmp_path, line, why):
    env_file = tmp_path / "job.env"
    env_file.write_text(f"OK=1\n{line}\n")
    message = refused_in_one_line(add(tmp_path, "--env-file", str(env_file)), tmp_path)
    assert f"{env_file}:2:" in message and why in message and "text" not in message.split(":2:")[1][:12]
