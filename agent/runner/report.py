"""Run reports: the JSON report (a contract, schema in report.json) and JUnit XML for CI systems."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

from agent.atomicfile import write_output
from agent.runner.run import RunResult
from agent.secrets import mask, masked, printable

HOST_STATUSES = ("ok", "changed", "failed", "unreachable", "skipped")
# XML 1.0's Char production leaves out these: C0 controls but tab and line breaks, surrogates, U+FFFE/U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("agent.runner").joinpath("report.json").read_text())
    return schema


def build_report(result: RunResult) -> dict[str, Any]:
    summary = {"hosts": len(result.hosts), **{status: result.count(status) for status in HOST_STATUSES}}
    return {
        "run_id": result.run_id,
        "playbook": result.playbook,
        "inventory": result.inventory,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "dry_run": result.dry_run,
        "status": result.status,
        "reason": result.reason,
        "summary": summary,
        **({"account": result.standing.to_report()} if result.standing else {}),
        "hosts": [
            {
                "name": host.name,
                "address": host.address,
                "status": host.status,
                "steps": [step.to_json() for step in host.steps],
                "error": host.error,
                **host.report,
            }
            for host in result.hosts
        ],
    }


def junit_xml(result: RunResult) -> bytes:
    """One testcase per host and step; an unreachable or unstarted host is one testcase of its own."""
    suite = ET.Element("testsuite", name=f"ispagent {Path(result.playbook).name}", timestamp=result.started_at)
    tests = failures = skipped = 0
    for host in result.hosts:
        cases = [(s.step, s.status, s.message, s.duration_s) for s in host.steps]
        if host.status in ("unreachable", "skipped") and not cases:
            cases = [("connect" if host.status == "unreachable" else "not run", host.status, host.error or "", 0.0)]
        for step, status, message, duration in cases:
            message = _xml_text(mask(message))  # masked before XML escapes it: a secret with & or < is masked too
            case = ET.SubElement(
                suite, "testcase", classname=_xml_text(host.name), name=_xml_text(step), time=f"{duration:.3f}"
            )
            tests += 1
            if status in ("failed", "unreachable"):
                failures += 1
                ET.SubElement(case, "failure", message=message, type=status).text = message
            elif status == "skipped":
                skipped += 1
                ET.SubElement(case, "skipped", message=message)
            elif message:
                ET.SubElement(case, "system-out").text = message
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    document: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return document


def _xml_text(text: str) -> str:
    """`text` with what XML 1.0 cannot hold (ESC, NUL, other controls) written as visible escapes.

    One host printing an escape sequence must not make the whole report unparseable for CI.
    """
    if _XML_FORBIDDEN.search(text) is None:
        return text
    return _XML_FORBIDDEN.sub(lambda match: printable(match[0], backslashes=False), text)


def write_report(path: Path, result: RunResult) -> None:
    write_output(path, (json.dumps(masked(build_report(result)), indent=2) + "\n").encode(), "JSON report")


def write_junit(path: Path, result: RunResult) -> None:
    write_output(path, junit_xml(result), "JUnit report")
