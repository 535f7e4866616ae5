"""Which step ends a host waits for the journal to have on disk: only those a crash must not make a
resumed run do again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agent.runner.events import StepFinished
from agent.runner.hostrun import run_step
from agent.runner.playbook import PlaybookStep
from agent.runner.registry import NoParams, changed, failed, step


def _type(name: str, outcome, **flags):
    @step(name, NoParams, **flags)
    def function(ctx, params):
        return outcome(f"{name} done")

    return function.step_type


@pytest.mark.parametrize(
    "flags, outcome, durable",
    [
        ({}, changed, True),  # a shell command: done twice, a line is appended twice
        ({"idempotent": True}, changed, False),  # upload, template: done again, nothing changes
        ({"read_only": True}, changed, False),  # a resumed run does it again anyway
        ({"rerun_on_resume": True}, changed, False),
        ({}, failed, False),  # a failed step is done again on resume
    ],
)
def test_a_hosts_wait_for_a_steps_end_on_disk_depends_on_whether_doing_it_again_is_harmless(flags, outcome, durable):
    events: list = []
    context = SimpleNamespace(host=SimpleNamespace(name="h1"), host_may_change=lambda: None)
    planned = PlaybookStep("s", _type("s", outcome, **flags), NoParams(), 1)
    run_step(context, planned, events.append)  # type: ignore[arg-type]
    ends = [event for event in events if isinstance(event, StepFinished)]
    assert [end.durable for end in ends] == [durable]
