"""Secrets are masked in the data before it is encoded, never in the finished text; every text format
stays valid whatever a host prints.

A mask over finished JSON once removed a `status` key equal to a panel password, and a mask over
escaped HTML or XML missed a secret holding `&` or `<`; one host's ESC or NUL made the JUnit file
unparseable for CI.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.runner.events import HostOutcome, StepRecord
from agent.runner.htmlreport import render_html
from agent.runner.journal import Journal, RunRecord
from agent.runner.report import junit_xml, write_junit, write_report
from agent.runner.run import RunResult
from agent.secrets import forget_secrets, register_secret
from agent.transport.hostlog import HostLog

RUN = "20261206T010203-a1b2c3"
NASTY = "p&<'\"ss-w0rd>"


@pytest.fixture(autouse=True)
def clean_registry():
    forget_secrets()
    yield
    forget_secrets()


def result(message: str, error: str | None = None) -> RunResult:
    step = StepRecord("shell", "failed", False, 0.5, message)
    return RunResult(
        run_id=RUN,
        playbook="/p.yaml",
        inventory="/i.yaml",
        started_at="2026-12-06T01:02:03+00:00",
        finished_at="2026-12-06T01:02:09+00:00",
        dry_run=False,
        hosts=[HostOutcome("web1", "198.18.0.2", "failed", (step,), error or message)],
    )


@pytest.mark.parametrize("password", ["status", "2026"])
def test_a_panel_password_too_short_to_mask_is_refused_at_load_in_one_line(tmp_path, password):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n  web1:\n    address: 198.18.0.2\n    vars:\n      edition: lite\n      panel_users:\n"
        f'        - {{name: alice, password: "{password}", preset: basic}}\n'
    )
    done = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory)])
    assert done.exit_code == 2, done.output
    assert done.output.strip().splitlines() == [done.output.strip()]
    assert (
        f"{inventory}:7:" in done.output and "too short" in done.output and password not in done.output.split(":7:")[1]
    )


def test_a_secret_equal_to_a_key_or_part_of_a_run_id_leaves_records_whole(tmp_path):
    for secret in ("started_at", "20261206", "finished"):  # long enough to be taken; a key, a date, a status
        register_secret(secret)
    journal = Journal(tmp_path / "state", RUN)
    journal.write_record(
        RunRecord(RUN, "/p.yaml", "x", "/i.yaml", ["web1"], {}, "2026-12-06T01:02:03+00:00", "finished")
    )
    journal.open_events()
    from agent.runner.events import RunStarted

    journal(RunStarted(RUN, 1, False))
    journal.close()
    record = Journal(tmp_path / "state", RUN).read_record()
    assert record.status == "finished" and record.started_at == "2026-12-06T01:02:03+00:00"
    assert json.loads((journal.dir / "run.json").read_text())["run_id"] == RUN
    assert RUN in journal.events_path.read_text()
    listed = CliRunner().invoke(cli, ["runs", "--state-dir", str(tmp_path / "state")])
    assert RUN in listed.output and "2026-12-06T01:02:03+00:00" in listed.output
    write_report(tmp_path / "r.json", result("step said finished"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["run_id"] == RUN and report["started_at"].startswith("2026-12-06") and report["status"] == "finished"


@pytest.mark.parametrize("secret", ["20261206T010203-a1b2c3", "pw-2026-12-06T01:02"])
def test_a_secret_shaped_like_a_run_id_or_a_time_is_refused(secret):
    from agent.secrets import SecretRefused

    with pytest.raises(SecretRefused, match="run id or a timestamp"):
        register_secret(secret)


def test_a_secret_with_html_and_xml_metacharacters_is_masked_in_every_format(tmp_path):
    register_secret(NASTY)
    outcome = result(f"login failed for {NASTY}: bad")
    html = render_html(outcome)
    write_junit(tmp_path / "j.xml", outcome)
    write_report(tmp_path / "r.json", outcome)
    escaped = NASTY.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for text in (html, (tmp_path / "j.xml").read_text(), (tmp_path / "r.json").read_text()):
        assert "ss-w0rd" not in text and escaped not in text and "***" in text


@pytest.mark.parametrize("noise", ["\x1b[31mred\x1b[0m", "nul\x00byte", "\x07\x08\x0b\x0c", "\ud800", "\ufffe"])
def test_junit_stays_parseable_whatever_a_host_prints(noise):
    document = junit_xml(result(f"stderr: {noise}", error=noise))
    suite = ET.fromstring(document)
    failure = suite.find("testcase/failure")
    assert failure is not None and "stderr: " in failure.text and failure.get("type") == "failed"


def test_a_host_log_holds_no_raw_terminal_escape(tmp_path):
    path = tmp_path / "web1.log"
    HostLog(path).write("out", "title \x1b]0;pwned\x07 clear \x1b[2J\rcarriage\nnext line\n")
    text = path.read_text()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b[2J" in text and len(text.splitlines()) == 2
