"""The runner's seams: a run built from objects, any host source, any connector (agent.testing's replay)."""

from __future__ import annotations

import threading

import pytest

from agent.errors import InputError
from agent.inventory.model import Endpoint, Host
from agent.runner.events import HostFinished, HostStarted
from agent.runner.journal import Journal
from agent.runner.playbook import playbook_from_data
from agent.runner.run import RunOptions, RunPlan, resume_run, start_run
from agent.testing import ExpectedCommand, ReplayConnector

HOSTS = [Host(f"h{i}", Endpoint(f"198.18.0.{i + 1}")) for i in range(1, 5)]
PLAYBOOK = {"name": "greet", "steps": [{"shell": {"command": "echo hi"}}]}


def _connector(hosts=HOSTS) -> ReplayConnector:
    return ReplayConnector({h.name: [ExpectedCommand("echo hi", stdout="hi\n")] for h in hosts})


class OneAtATime:
    """A toy host source: the next host only once the previous one was released."""

    def __init__(self, hosts: list[Host]) -> None:
        self.pending = list(hosts)
        self.busy = False
        self.lock = threading.Lock()
        self.released: list[tuple[str, str]] = []
        self.entered = self.exited = False

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc) -> None:
        self.exited = True

    def claim(self) -> Host | None:
        with self.lock:
            if self.busy or not self.pending:
                return None
            self.busy = True
            return self.pending.pop(0)

    def release(self, host: Host, outcome) -> None:
        with self.lock:
            self.busy = False
            self.released.append((host.name, outcome.status))


def test_a_run_built_from_objects_runs_and_is_journaled(tmp_path):
    connector = _connector()
    plan = RunPlan(playbook_from_data(PLAYBOOK, tmp_path), HOSTS, RunOptions(state_dir=tmp_path / "state"))
    result = start_run(plan, listener=lambda event: None, connector=connector)
    connector.assert_done()
    assert [(h.name, h.status) for h in result.hosts] == [(h.name, "changed") for h in HOSTS]
    record = Journal(tmp_path / "state", result.run_id).read_record()
    assert record.inventory == "" and record.hosts == [h.name for h in HOSTS] and record.status == "finished"


def test_a_host_source_plugs_in_without_touching_the_runner(tmp_path):
    source = OneAtATime(HOSTS)
    events = []
    plan = RunPlan(playbook_from_data(PLAYBOOK, tmp_path), HOSTS, RunOptions(state_dir=tmp_path / "state", forks=10))
    result = start_run(plan, listener=events.append, connector=_connector(), source=lambda todo: source)
    assert source.entered and source.exited
    assert source.released == [(h.name, "changed") for h in HOSTS]
    # One host at a time, although ten workers were free: each started after the one before finished.
    order = [
        (type(e).__name__, getattr(e, "host", None) or e.outcome.name)
        for e in events
        if isinstance(e, (HostStarted, HostFinished))
    ]
    assert order == [(kind, h.name) for h in HOSTS for kind in ("HostStarted", "HostFinished")]
    assert result.exit_code == 0


def test_hosts_a_source_never_hands_out_are_not_run_and_fail_the_run(tmp_path):
    """A plan's host that no source handed out is not done: the run must not exit 0."""
    source = OneAtATime(HOSTS[:2])
    plan = RunPlan(playbook_from_data(PLAYBOOK, tmp_path), HOSTS, RunOptions(state_dir=tmp_path / "state"))
    result = start_run(plan, listener=lambda event: None, connector=_connector(HOSTS[:2]), source=lambda todo: source)
    assert [h.status for h in result.hosts] == ["changed", "changed", "skipped", "skipped"]
    assert result.exit_code == 1


def test_a_run_from_objects_resumes_only_with_its_plan(tmp_path):
    options = RunOptions(state_dir=tmp_path / "state")
    plan = RunPlan(playbook_from_data(PLAYBOOK, tmp_path), HOSTS, options)
    failing = ReplayConnector({h.name: [ExpectedCommand("echo hi", exit_status=1)] for h in HOSTS})
    first = start_run(plan, listener=lambda event: None, connector=failing)
    assert first.exit_code == 1
    with pytest.raises(InputError, match="started from Python objects"):
        resume_run(first.run_id, options.state_dir, listener=lambda event: None)
    other = RunPlan(playbook_from_data({"steps": ["facts"]}, tmp_path), HOSTS, options)
    with pytest.raises(InputError, match="the playbook changed"):
        resume_run(first.run_id, options.state_dir, listener=lambda event: None, plan=other, connector=_connector())
    second = resume_run(first.run_id, options.state_dir, listener=lambda event: None, plan=plan, connector=_connector())
    assert [h.status for h in second.hosts] == ["changed"] * len(HOSTS) and second.exit_code == 0


def test_a_plan_refuses_bad_host_settings_before_any_host_is_contacted(tmp_path):
    bad = Host("h9", Endpoint("198.18.0.9"), vars={"period": "weekly"})
    with pytest.raises(InputError, match=r"hosts given in Python: hosts\.h9: var 'period'"):
        RunPlan(playbook_from_data(PLAYBOOK, tmp_path), [bad], RunOptions(state_dir=tmp_path))


def test_two_hosts_of_one_name_are_refused(tmp_path):
    with pytest.raises(InputError, match="distinct names: h1"):
        RunPlan(playbook_from_data(PLAYBOOK, tmp_path), [HOSTS[0], HOSTS[0]], RunOptions(state_dir=tmp_path))
