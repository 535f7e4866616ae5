"""`ispagent runs show RUN_ID`: a journaled run's summary, and its reports rendered from the journal the same
as `run --report-*` wrote them (issue 22, Build 5). The run is a real one: the license step against the partner
emulator (an order paid for, a license that expires within 30 days, a ledger file), through the runner's journal."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from partnerkit import partner_vars, start_emulator

from agent.cli.main import cli
from agent.runner.htmlreport import write_html
from agent.runner.journal import Journal
from agent.runner.report import build_report, write_junit, write_report
from agent.runner.run import RunOptions, RunPlan, start_run
from agent.testing import ReplayConnector

HOSTS = {"w1": "198.18.0.2", "w2": "198.18.0.3", "w3": "198.18.0.4"}


@pytest.fixture
def account(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    yield emulator
    emulator.stop()


def _files(tmp_path: Path, emulator, playbook_steps: list) -> tuple[Path, Path]:
    playbook = tmp_path / "licenses.yaml"
    playbook.write_text(yaml.safe_dump({"name": "licenses", "steps": playbook_steps}))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "ssh": {"known_hosts": str(tmp_path / "known_hosts")},
                "defaults": {"vars": partner_vars(emulator, tmp_path / "ledger.sqlite")},
                "hosts": {
                    name: {"address": address, "vars": {"fqdn": f"{name}.lab.example"}}
                    for name, address in HOSTS.items()
                },
            }
        )
    )
    return playbook, inventory


def _run(tmp_path: Path, emulator, steps: list | None = None):
    playbook, inventory = _files(tmp_path, emulator, steps or ["license"])
    plan = RunPlan.from_files(playbook, inventory, RunOptions(state_dir=tmp_path / "state"))
    return start_run(plan, listener=lambda event: None, connector=ReplayConnector())


def _reports(result, directory: Path) -> dict[str, bytes]:
    directory.mkdir(exist_ok=True)
    write_report(directory / "report.json", result)
    write_junit(directory / "junit.xml", result)
    write_html(directory / "report.html", result)
    return {name: (directory / name).read_bytes() for name in ("report.json", "junit.xml", "report.html")}


def test_runs_show_renders_the_same_reports_as_the_run_wrote(tmp_path, account):
    _license_expiring_in_10_days(account)
    result = _run(tmp_path, account)
    assert [host.report["license"]["action"] for host in result.hosts] == ["ordered"] * 3
    assert len(result.standing.expiring) == 1 and result.standing.turnover
    live = _reports(result, tmp_path / "live")
    out = tmp_path / "shown"
    out.mkdir()
    shown = CliRunner().invoke(
        cli,
        [
            "runs",
            "show",
            result.run_id,
            "--state-dir",
            str(tmp_path / "state"),
            "--report-json",
            str(out / "report.json"),
            "--junit",
            str(out / "junit.xml"),
            "--report-html",
            str(out / "report.html"),
        ],
    )
    assert shown.exit_code == 0, shown.output
    for name, data in live.items():
        assert (out / name).read_bytes() == data, name
    assert f"run {result.run_id} finished: 3 host(s)" in shown.output


def test_runs_show_of_a_resumed_run_with_a_failed_host_matches_its_reports(tmp_path, account):
    # w2's shell step fails in the first run; the resumed run finishes it: the journal holds both attempts.
    steps = ["license", {"shell": {"command": "test -e /etc/ready", "changes": False}}]
    playbook, inventory = _files(tmp_path, account, steps)
    from agent.runner.recorded import recorded_result
    from agent.runner.run import resume_run
    from agent.testing import ExpectedCommand

    connector = ReplayConnector()
    for name in HOSTS:
        connector.script(name, [ExpectedCommand("test -e /etc/ready", exit_status=1 if name == "w2" else 0)])
    first = start_run(
        RunPlan.from_files(playbook, inventory, RunOptions(state_dir=tmp_path / "state")),
        listener=lambda event: None,
        connector=connector,
    )
    assert [h.status for h in first.hosts] == ["changed", "failed", "changed"]
    again = ReplayConnector({"w2": [ExpectedCommand("test -e /etc/ready")]})
    second = resume_run(first.run_id, tmp_path / "state", lambda event: None, connector=again)
    assert second.count("failed") == 0
    assert _reports(recorded_result(tmp_path / "state", first.run_id), tmp_path / "shown") == _reports(
        second, tmp_path / "live"
    )


def test_licenses_the_run_ordered_have_their_price_in_the_report(tmp_path, account):
    result = _run(tmp_path, account)
    report = build_report(result)
    prices = {host["name"]: host["license"].get("price") for host in report["hosts"]}
    assert all(prices.values()), prices
    program_price = result.standing.ordered[0].list_price
    assert program_price and result.standing.ordered_list_total == 3 * program_price
    html = _reports(result, tmp_path / "live")["report.html"].decode()
    table = html.split('id="licenses"')[1].split("</table>")[0]
    for price in prices.values():
        assert f"{float(price):,.2f} {result.standing.currency}" in table


def _license_expiring_in_10_days(emulator) -> None:
    """A license of the account that is not the run's, near its expiry: the notice must name it."""
    from datetime import date, timedelta

    emulator.store.db.execute(
        "INSERT INTO licenses (account, pricelist, period, ip, licname, remoteid, status, lickey, key_ready_at,"
        " createdate, expiredate) VALUES ('lab-partner@example.com', '55227', 1, '10.64.0.9', 'old.example', 'old',"
        " 2, 'old-key', 0.0, '2026-01-01', ?)",
        ((date.today() + timedelta(days=10)).isoformat(),),
    )


def test_monthly_licenses_the_run_ordered_are_not_expiring(tmp_path, account):
    _license_expiring_in_10_days(account)  # it alone is named
    result = _run(tmp_path, account)
    ordered = {host.report["license"]["id"] for host in result.hosts}
    assert len(ordered) == 3
    expiring = {lic.license_id for lic in result.standing.expiring}
    assert not expiring & ordered
    assert len(expiring) == 1
    from agent.cli.run_output import summary_notes
    from agent.runner.metrics import metrics_text

    assert any(note.startswith("1 license(s) in the account expire within 30 days") for note in summary_notes(result))
    assert b"ispagent_licenses_expiring 1.0" in metrics_text(result, exit_code=0, now=0.0, last_success=None)
    from agent.runner.htmlreport import render_html

    page = render_html(result)
    assert "1 license(s) expire within 30 days" in page and not any(f"{lid} (" in page for lid in ordered)


def test_runs_show_of_an_unknown_or_foreign_run_is_one_line(tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    for run_id in ("20261126T155417-8c50ad", "../../etc", "x" * 300):
        shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--state-dir", str(tmp_path / "state")])
        assert shown.exit_code == 2, shown.output
        assert len(shown.output.strip().splitlines()) == 1 and "Traceback" not in shown.output


def test_runs_show_of_a_damaged_standing_is_one_line(tmp_path, account):
    result = _run(tmp_path, account)
    journal = Journal(tmp_path / "state", result.run_id)
    record = json.loads(journal.record_path.read_text())
    record["standing"] = {"unconfirmed_activations": "not a list"}
    journal.record_path.write_text(json.dumps(record))
    shown = CliRunner().invoke(cli, ["runs", "show", result.run_id, "--state-dir", str(tmp_path / "state")])
    assert shown.exit_code == 2 and "unreadable account standing" in shown.output
    assert len(shown.output.strip().splitlines()) == 1


def test_junit_of_runs_show_parses(tmp_path, account):
    result = _run(tmp_path, account)
    out = tmp_path / "junit.xml"
    shown = CliRunner().invoke(
        cli, ["runs", "show", result.run_id, "--state-dir", str(tmp_path / "state"), "--junit", str(out)]
    )
    assert shown.exit_code == 0, shown.output
    assert ET.parse(out).getroot().get("tests") == "3"
    assert oct(os.stat(out).st_mode & 0o777)


@pytest.mark.parametrize("duration", ['"1.5"', '{"s": 1}', "true", "-1", "1e999"])
def test_a_step_event_of_the_wrong_shape_is_not_done_and_runs_show_renders_the_rest(tmp_path, duration):
    # Found by harness.inputs (run-record cases 80 and 142): a duration that was text ended runs show in a traceback.
    from harness.mutations import RUN_RECORD, RUN_RECORD_ID

    run = tmp_path / "state" / "runs" / RUN_RECORD_ID
    run.mkdir(parents=True)
    (tmp_path / "state").chmod(0o700)
    (run / "run.json").write_text(RUN_RECORD)
    (run / "events.jsonl").write_text(
        '{"event": "host_started", "host": "web1"}\n'
        '{"event": "step_finished", "host": "web1", "step": "facts", "status": "ok", "changed": false,'
        ' "duration_s": 0.25, "message": ""}\n'
        '{"event": "step_finished", "host": "web1", "step": "preflight", "status": "ok", "changed": false,'
        f' "duration_s": {duration}, "message": ""}}\n'
        '{"event": "host_finished", "host": "web1", "status": "ok", "error": null, "report": {}}\n'
    )
    out = tmp_path / "out"
    out.mkdir()
    shown = CliRunner().invoke(
        cli,
        [
            "runs",
            "show",
            RUN_RECORD_ID,
            "--state-dir",
            str(tmp_path / "state"),
            "--report-json",
            str(out / "r.json"),
            "--report-html",
            str(out / "r.html"),
            "--junit",
            str(out / "r.xml"),
        ],
    )
    assert shown.exit_code == 0 and shown.exception is None, (shown.output, shown.exception)
    steps = json.loads((out / "r.json").read_text())["hosts"][0]["steps"]
    assert [step["step"] for step in steps] == ["facts"]
