"""A shared rollout run by nodes in threads (agent/runner/fleet.py) on the real PostgreSQL, hosts replayed."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from pgkit import CuttableProxy, pg_schema

from agent.errors import InputError
from agent.inventory.model import Endpoint, Host
from agent.ledger.rollouts import NodeInfo, RolloutBoard, RolloutHost, RolloutStatus, StepRow
from agent.runner.events import HostOutcome
from agent.runner.fleet import RolloutRun, run_rollout
from agent.runner.playbook import playbook_from_data
from agent.runner.run import EXIT_UNCONFIRMED, RunOptions, RunPlan, RunResult, resume_run
from agent.runner.standing import AccountStanding, Unconfirmed
from agent.transport.base import CommandResult

PLAYBOOK = {"name": "two", "steps": [{"shell": {"command": "echo one"}}, {"shell": {"command": "echo two"}}]}


class Recording:
    """A connector whose hosts answer every command; each (host, command) is kept, `hook` sees it first."""

    def __init__(self, hook=None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.hook = hook
        self.lock = threading.Lock()

    def connect(self, host: Host, log=None):
        return _Answering(host, self)

    def close(self) -> None:
        pass


class _Answering:
    def __init__(self, host: Host, connector: Recording) -> None:
        self.host, self.connector = host, connector

    def run(self, command, **kwargs) -> CommandResult:
        line = command if isinstance(command, str) else " ".join(command)
        with self.connector.lock:
            self.connector.calls.append((self.host.name, line))
        if self.connector.hook:
            self.connector.hook(self.host.name, line)
        return CommandResult(line, 0, "hi\n", "")

    def close(self) -> None:
        pass


@pytest.fixture
def url():
    with pg_schema() as url:
        yield url


def plan_of(tmp_path, url: str, count: int = 6, **options) -> RunPlan:
    hosts = [Host(f"h{i}", Endpoint(f"198.18.0.{i + 1}"), vars={"ledger_url": url}) for i in range(1, count + 1)]
    state = tmp_path / f"state-{threading.get_ident()}-{time.monotonic_ns()}"
    return RunPlan(
        playbook_from_data(PLAYBOOK, tmp_path), hosts, RunOptions(**{"state_dir": state, "forks": 2, **options})
    )


def test_two_nodes_share_the_hosts_and_run_each_exactly_once(url, tmp_path):
    connector = Recording(hook=lambda host, line: time.sleep(0.05))  # slow enough that both nodes get hosts
    runs = {}

    def node(name: str) -> None:
        runs[name] = run_rollout(plan_of(tmp_path, url), "r1", lambda event: None, connector=connector, lease_s=5)

    threads = [threading.Thread(target=node, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(connector.calls) == {(f"h{i}", f"echo {n}"): 1 for i in range(1, 7) for n in ("one", "two")}
    worked = [sorted(h.name for h in run.result.hosts) for run in runs.values()]
    assert sorted(worked[0] + worked[1]) == [f"h{i}" for i in range(1, 7)] and all(worked), worked
    assert [run.started for run in runs.values()].count(True) == 1  # one started it, the other joined
    status = RolloutBoard(url).status("r1")
    assert status.complete and status.exit_code == 0 and {h.state for h in status.hosts} == {"changed"}
    assert all(run.exit_code == 0 for run in runs.values())
    # A later node finds nothing to do: a host finished in the rollout is never redone.
    again = run_rollout(plan_of(tmp_path, url), "r1", lambda event: None, connector=connector, lease_s=5)
    assert len(connector.calls) == 12 and again.result.hosts == [] and again.exit_code == 0


def test_a_host_whose_node_died_continues_after_its_lease_without_redoing_finished_steps(url, tmp_path):
    board = RolloutBoard(url)
    dead = NodeInfo("dead", "elsewhere", 1, 1.0)
    board.start_or_join("r1", "x.yaml", playbook_from_data(PLAYBOOK, tmp_path).sha256, ["h1", "h2"], dead)
    claim = board.claim("r1", dead, ["h1"])
    board.record_step("r1", "h1", dead, claim.token, StepRow("shell", "changed", True, 0.1, "echo one ran"))
    connector = Recording()
    began = time.monotonic()
    run = run_rollout(
        plan_of(tmp_path, url, count=2), "r1", lambda event: None, connector=connector, lease_s=5, wait=True, poll_s=0.1
    )
    assert time.monotonic() - began >= 0.8  # it waited for the dead node's lease to run out
    assert sorted(connector.calls) == [("h1", "echo two"), ("h2", "echo one"), ("h2", "echo two")]
    h1 = next(h for h in run.result.hosts if h.name == "h1")
    assert [(s.step, s.status) for s in h1.steps] == [("shell", "changed"), ("shell#2", "changed")]
    assert run.waited and run.status.complete and run.exit_code == 0
    assert {h.name: h.claims for h in run.status.hosts} == {"h1": 2, "h2": 1}
    board.close()


def test_a_node_that_lost_its_claim_stops_acting_on_the_host(url, tmp_path):
    """Another node takes h1 while its first step runs here: the step's end is not recorded, the second
    step never runs here, and the host stays the other node's."""
    board = RolloutBoard(url)
    thief = NodeInfo("thief", "elsewhere", 1, 30.0)

    def steal(host: str, line: str) -> None:
        if (host, line) == ("h1", "echo one"):
            from sqlalchemy import update

            from agent.ledger.schema import rollout_hosts

            with board.db.write() as db:  # as if this node's lease had run out and the thief had claimed h1
                db.execute(
                    update(rollout_hosts)
                    .where(rollout_hosts.c.host_name == "h1")
                    .values(node=thief.node, token=rollout_hosts.c.token + 1)
                )

    connector = Recording(hook=steal)
    run = run_rollout(plan_of(tmp_path, url, count=2, forks=1), "r1", lambda event: None, connector=connector)
    assert ("h1", "echo two") not in connector.calls and ("h2", "echo two") in connector.calls
    h1 = next(h for h in run.result.hosts if h.name == "h1")
    assert h1.status == "skipped" and "no longer held by this node" in h1.error
    assert set(run.lost) == {"h1"} and run.exit_code == 1
    states = {h.name: (h.state, h.node) for h in board.status("r1").hosts}
    assert states["h1"] == ("claimed", "thief") and states["h2"][0] == "changed"
    from sqlalchemy import select

    from agent.ledger.schema import rollout_steps

    assert board.db.rows(select(rollout_steps.c.step).where(rollout_steps.c.host_name == "h1")) == []  # end refused
    board.close()


def test_a_node_that_loses_the_database_stops_claiming_at_once(url, tmp_path):
    proxy = CuttableProxy()
    cut: list[bool] = []

    def cut_once() -> None:
        if not cut:
            cut.append(True)
            proxy.cut()

    try:
        cut_url = proxy.url(url)
        connector = Recording(hook=lambda host, line: cut_once() if line == "echo one" else None)
        run = run_rollout(
            plan_of(tmp_path, cut_url, count=4, forks=1), "r1", lambda event: None, connector=connector, lease_s=5
        )
        assert {host for host, _ in connector.calls} == {"h1"}  # no host claimed after the cut
        assert ("h1", "echo two") not in connector.calls  # and the claimed one is not acted on without its claim
        assert run.database_lost and run.exit_code == 1
        assert "ispagent-test-pw" not in run.database_lost
    finally:
        cut_once()
    status = RolloutBoard(url).status("r1")
    h1 = next(h for h in status.hosts if h.name == "h1")
    assert h1.state == "claimed" and [h.state for h in status.hosts[1:]] == ["pending"] * 3  # h1 waits out its lease


def test_a_rollout_node_run_is_not_resumed_alone(url, tmp_path):
    plan = plan_of(tmp_path, url, count=1, rollout="r1")
    run = run_rollout(plan, "r1", lambda event: None, connector=Recording())
    with pytest.raises(InputError, match="node of rollout r1: join the rollout again"):
        resume_run(run.result.run_id, plan.options.state_dir, lambda event: None, plan=plan)


def test_a_rollout_needs_one_postgresql_ledger(url, tmp_path):
    plan = RunPlan(
        playbook_from_data(PLAYBOOK, tmp_path),
        [Host("h1", Endpoint("198.18.0.2"))],
        RunOptions(state_dir=tmp_path / "state"),
    )
    with pytest.raises(InputError, match="kept in a PostgreSQL ledger"):
        run_rollout(plan, "r1", lambda event: None, connector=Recording())
    assert not (tmp_path / "state" / "ledger.sqlite").exists()
    with pytest.raises(InputError, match="rollout name"):
        run_rollout(plan_of(tmp_path, url), "no spaces", lambda event: None, connector=Recording())


def test_wait_gives_up_in_one_line_when_no_node_is_alive_to_take_the_hosts_left(url, tmp_path):
    """h2 is another site's (--limit h1 here) and no node of that site runs: --wait ends after one lease."""
    began = time.monotonic()
    run = run_rollout(
        plan_of(tmp_path, url, count=2),
        "r1",
        lambda event: None,
        connector=Recording(),
        lease_s=1,
        wait=True,
        poll_s=0.1,
        claimable={"h1"},
    )
    waited = time.monotonic() - began
    assert 1.0 <= waited < 10, waited
    assert run.stalled and "1 host(s) not finished (h2)" in run.stalled and "--limit covers them" in run.stalled
    assert run.exit_code == 1 and not run.status.complete
    assert {h.name: h.state for h in run.status.hosts} == {"h1": "changed", "h2": "pending"}


def test_wait_goes_on_while_another_node_is_alive_and_ends_with_the_rollouts_code(url, tmp_path):
    board = RolloutBoard(url)
    other = NodeInfo("site2:7:aa", "site2", 7, 1.0)
    board.start_or_join("r1", "x.yaml", playbook_from_data(PLAYBOOK, tmp_path).sha256, ["h1", "h2"], other)

    def site2() -> None:  # alive (heartbeats) for 3 s, well past this node's 1 s lease, then does h2
        for _ in range(10):
            board.heartbeat("r1", other)
            time.sleep(0.3)
        claim = board.claim("r1", other, ["h2"])
        board.finish("r1", "h2", other, claim.token, "ok")

    thread = threading.Thread(target=site2)
    thread.start()
    began = time.monotonic()
    run = run_rollout(
        plan_of(tmp_path, url, count=2),
        "r1",
        lambda event: None,
        connector=Recording(),
        lease_s=1,
        wait=True,
        poll_s=0.1,
        claimable={"h1"},
    )
    thread.join()
    assert time.monotonic() - began >= 2.9
    assert run.stalled is None and run.status.complete and run.exit_code == 0
    # Its report is the whole rollout's: the other site's host too, with the node that ran it.
    assert {h.name: (h.status, h.report["rollout"]["node"]) for h in run.report.hosts} == {
        "h1": ("changed", run.node),
        "h2": ("ok", other.node),
    }
    assert run.report.status == "finished" and [len(h.steps) for h in run.report.hosts] == [2, 0]
    board.close()


@pytest.mark.parametrize(
    ("rollout_states", "unconfirmed", "expected"),
    [
        (("changed", "ok"), True, EXIT_UNCONFIRMED),  # every host done, but this node's activation is not confirmed
        (("changed", "ok"), False, 0),
        (("changed", "failed"), True, 1),  # a failed host says more than an unconfirmed activation
    ],
)
def test_a_waiting_node_exits_4_when_its_own_activations_are_unconfirmed(rollout_states, unconfirmed, expected):
    """`run --rollout NAME --wait` exits with the rollout's code; the rollout's record does not hold
    the partner account's confirmations, so this node's own unconfirmed activations add the 4 a
    node exits with without --wait."""
    standing = AccountStanding(unconfirmed=(Unconfirmed("h1", "L-1", 3),) if unconfirmed else ())
    result = RunResult(
        "run",
        "p.yaml",
        "i.yaml",
        "now",
        False,
        [HostOutcome("h1", "198.18.0.2", "changed", (), None)],
        standing=standing,
    )
    hosts = tuple(
        RolloutHost(f"h{index}", state, "a", None, 1, None, None) for index, state in enumerate(rollout_states, 1)
    )
    status = RolloutStatus("r1", "p.yaml", "sha", "a", 0.0, 1.0, hosts, ())
    assert result.exit_code == (EXIT_UNCONFIRMED if unconfirmed else 0)
    assert RolloutRun("r1", "a", True, 2, result=result, status=status, waited=True).exit_code == expected
