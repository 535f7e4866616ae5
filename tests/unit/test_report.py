"""The JSON report contract and the JUnit file."""

import xml.etree.ElementTree as ET

import jsonschema
import pytest

from agent.runner.events import HostOutcome, StepRecord
from agent.runner.report import build_report, junit_xml, report_schema
from agent.runner.run import RunResult


def _result():
    ok = StepRecord("facts", "ok", False, 0.01, "Debian")
    changed = StepRecord("upload", "changed", True, 0.02, "/etc/motd created")
    broken = StepRecord("shell", "failed", False, 0.03, "exit status 1: nope")
    return RunResult(
        run_id="r1",
        playbook="/p.yaml",
        inventory="/i.yaml",
        started_at="2026-11-26T10:00:00+00:00",
        finished_at="2026-11-26T10:00:05+00:00",
        dry_run=False,
        hosts=[
            HostOutcome("a", "198.18.0.2", "changed", (ok, changed), None),
            HostOutcome("b", "198.18.0.3", "failed", (ok, broken), "shell: exit status 1: nope"),
            HostOutcome("c", "198.18.0.4", "unreachable", (), "cannot connect"),
        ],
    )


def test_report_matches_schema_and_counts():
    report = build_report(_result())
    jsonschema.validate(report, report_schema())
    assert report["summary"] == {"hosts": 3, "ok": 0, "changed": 1, "failed": 1, "unreachable": 1, "skipped": 0}
    assert report["hosts"][1]["steps"][1] == {
        "step": "shell",
        "status": "failed",
        "changed": False,
        "duration_s": 0.03,
        "message": "exit status 1: nope",
    }


def test_schema_rejects_a_report_missing_a_contract_key():
    report = build_report(_result())
    del report["hosts"][0]["error"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, report_schema())


def test_junit_has_one_testcase_per_host_and_step():
    suite = ET.fromstring(junit_xml(_result()))
    cases = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert cases == [("a", "facts"), ("a", "upload"), ("b", "facts"), ("b", "shell"), ("c", "connect")]
    assert suite.get("tests") == "5" and suite.get("failures") == "2"
