"""The kill matrix of bench/chaos.py, reduced for CI: the install flow over two lab hosts, SIGKILLed
right after each kind of journal event around the money (license, installer, report), resumed, and
checked: one license per host, no duplicate, licid = account, one billed activation per license, a
second run that changes and orders nothing, no traceback."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from labkit import REPO

pytestmark = pytest.mark.lab

_spec = importlib.util.spec_from_file_location("chaos_bench", REPO / "bench" / "chaos.py")
chaos = importlib.util.module_from_spec(_spec)
sys.modules["chaos_bench"] = chaos  # its dataclasses look their module up there
_spec.loader.exec_module(chaos)

# The first host to reach the event (@1) or the second (@2): before and after the other host's work.
POINTS = ["step_finished:preflight@1", "step_started:license@1", "step_finished:license@1",
          "step_finished:license@2", "step_started:installer@2", "step_finished:installer@1",
          "step_finished:verify@2", "step_started:report@1", "step_finished:report@1", "host_finished@2"]


def test_every_kill_point_in_the_install_flow_is_covered_by_the_bench():
    assert set(chaos.KILL_POINTS) >= {point.split("@")[0] for point in POINTS}
    assert {f"step_finished:{step}" for step in chaos.STEPS} <= set(chaos.KILL_POINTS)


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_right_after_the_event_then_resume_keeps_every_invariant(lab, tmp_path, point):
    trial = chaos.kill_trial(lab, lab.hosts[:2], point, tmp_path)
    print("\n" + chaos.table([trial]))
    assert trial.killed, f"{point} never happened: the kill point is not in the flow"
    assert (trial.duplicates, trial.unlicensed, trial.lost_activations, trial.tracebacks) == (0, 0, 0, 0), trial
    assert trial.problems == []
