"""Drift-only runs: the audit pass decides which hosts run the whole playbook."""

from __future__ import annotations

from pathlib import Path

from runkit import outcome

from agent.cli.run_output import summary_notes
from agent.runner.drift import as_finding, audit_host, audit_id, audit_steps, interrupted_changes
from agent.runner.events import StepRecord
from agent.runner.playbook import load_playbook
from agent.runner.run import RunResult
from agent.runner.standing import AccountStanding, Unconfirmed

REPROVISION = load_playbook(Path(__file__).resolve().parents[2] / "playbooks" / "reprovision.yaml")


def test_audit_runs_the_read_only_steps_of_the_playbook_in_order():
    assert [step.id for step in audit_steps(REPROVISION)] == ["facts", "preflight", "verify"]


def _runner(failing: str | None):
    ran = []

    def run_step(planned):
        ran.append(planned.id)
        status = "failed" if planned.id == failing else "ok"
        return as_finding(StepRecord(audit_id(planned), status, False, 0.1, f"{planned.id} said so"))

    return run_step, ran


def test_clean_audit_leaves_the_host_alone():
    run_step, ran = _runner(None)
    audit = audit_host(audit_steps(REPROVISION), run_step)
    assert not audit.drifted and ran == ["facts", "preflight", "verify"]
    assert [record.step for record in audit.records] == ["audit:facts", "audit:preflight", "audit:verify"]


def test_a_failing_audit_step_is_a_finding_not_a_failure_and_stops_the_audit():
    run_step, ran = _runner("preflight")
    audit = audit_host(audit_steps(REPROVISION), run_step)
    assert audit.drifted and audit.reasons == ("preflight: preflight said so",)
    assert ran == ["facts", "preflight"]  # verify reads what preflight found
    assert [record.status for record in audit.records] == ["ok", "ok"]
    assert audit.records[-1].message == "drift: preflight said so"


def test_unconfirmed_activations_and_interrupted_changes_count_as_drift():
    run_step, _ = _runner(None)
    audit = audit_host(audit_steps(REPROVISION), run_step, ["report: activation of license 7 not yet confirmed"])
    assert audit.drifted
    carried = {
        "audit:verify": StepRecord("audit:verify", "ok", False, 0.1, ""),
        "configure": StepRecord("configure", "changed", True, 0.1, ""),
    }
    assert interrupted_changes(REPROVISION, carried) == [
        "run interrupted after configure had started changing the host"
    ]
    assert interrupted_changes(REPROVISION, {"facts": carried["audit:verify"]}) == []


def test_summary_notes_name_drifted_hosts_and_unconfirmed_activations_with_exit_4():
    hosts = [outcome("h1", "changed", drift=["verify: drift"]), outcome("h2", "ok", drift=[])]
    result = RunResult(
        "r",
        "p",
        "i",
        "2026-01-01T00:00:00+00:00",
        False,
        hosts,
        standing=AccountStanding(unconfirmed=(Unconfirmed("h1", "3100001", 1),)),
    )
    notes = summary_notes(result)
    assert notes[0] == "drift: 1 drifted (h1), 1 clean (left alone)"
    assert "1 activation(s) not yet confirmed by the partner account (license 3100001 on h1)" in notes[1]
    assert "(exit 4)" in notes[1] and result.exit_code == 4
