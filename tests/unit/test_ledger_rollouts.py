"""The shared rollout's tables on the real PostgreSQL: claims under SKIP LOCKED, leases, fencing tokens."""

from __future__ import annotations

import threading
import time

import pytest
from pgkit import pg_schema

from agent.errors import InputError
from agent.ledger.rollouts import NodeInfo, RolloutBoard, StepRow

HOSTS = [f"h{i:02d}" for i in range(1, 21)]


@pytest.fixture
def url():
    with pg_schema() as url:
        yield url


@pytest.fixture
def board(url):
    board = RolloutBoard(url)
    yield board
    board.close()


def node(name: str, lease_s: float = 30.0) -> NodeInfo:
    return NodeInfo(name, "machine", 1, lease_s)


def test_two_nodes_claiming_at_once_take_every_host_exactly_once(url, board):
    board.start_or_join("r", "p.yaml", "sha", HOSTS, node("a"))
    taken: dict[str, list[str]] = {"a": [], "b": []}
    gate = threading.Barrier(2)

    def claim_all(name: str) -> None:
        own = RolloutBoard(url)  # its own engine: a second control node's sessions
        me = node(name)
        own.start_or_join("r", "p.yaml", "sha", HOSTS, me)
        gate.wait()
        while (claim := own.claim("r", me, HOSTS)) is not None:
            taken[name].append(claim.host_name)
            time.sleep(0.005)  # the other node gets a turn while this one "works"
        own.close()

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(taken["a"] + taken["b"]) == HOSTS  # every host once, none twice
    assert taken["a"] and taken["b"], taken  # neither node waited the other out
    assert {h.state for h in board.status("r").hosts} == {"claimed"}


def test_a_claim_held_by_another_transaction_is_skipped_not_waited_for(url, board):
    board.start_or_join("r", "p.yaml", "sha", HOSTS[:2], node("a"))
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as db:  # another node in the middle of claiming h01
        db.execute(text("SELECT 1 FROM rollout_hosts WHERE host_name = 'h01' FOR UPDATE"))
        began = time.monotonic()
        claim = board.claim("r", node("b"), HOSTS[:2])
        assert claim.host_name == "h02" and time.monotonic() - began < 2
    engine.dispose()


def test_a_lease_that_ran_out_is_claimed_again_with_its_steps_and_fences_the_old_node(board):
    dead, alive = node("dead", lease_s=0.5), node("alive")
    board.start_or_join("r", "p.yaml", "sha", ["h1"], dead)
    first = board.claim("r", dead, ["h1"])
    assert board.record_step("r", "h1", dead, first.token, StepRow("facts", "ok", False, 0.1, "facts read"))
    assert board.claim("r", alive, ["h1"]) is None  # the lease still runs
    time.sleep(0.7)
    assert not board.holds("r", "h1", dead, first.token)  # ran out: the dead node may no longer write
    second = board.claim("r", alive, ["h1"])
    assert second.token == first.token + 1
    assert [(s.step, s.status) for s in second.steps] == [("facts", "ok")]  # carried like --resume
    # The old node comes back: every write of it for h1 is refused, and changes nothing.
    assert not board.record_step("r", "h1", dead, first.token, StepRow("license", "changed", True, 1, "ordered"))
    assert not board.finish("r", "h1", dead, first.token, "failed", "license", "boom")
    assert board.finish("r", "h1", alive, second.token, "ok")
    host = board.status("r").hosts[0]
    assert (host.state, host.node, host.claims, host.error) == ("ok", "alive", 2, None)
    assert board.claim("r", alive, ["h1"]) is None  # finished in the rollout: never handed out again


def test_the_heartbeat_keeps_a_lease_alive_past_its_length(board):
    me = node("a", lease_s=0.6)
    board.start_or_join("r", "p.yaml", "sha", ["h1"], me)
    claim = board.claim("r", me, ["h1"])
    for _ in range(4):
        time.sleep(0.3)
        assert board.heartbeat("r", me) == {"h1"}
    assert board.holds("r", "h1", me, claim.token)
    time.sleep(0.8)
    assert board.heartbeat("r", me) == set()  # ran out before this beat: not renewed, it is up for grabs


def test_joining_with_another_playbook_is_refused_in_one_line(board):
    assert board.start_or_join("r", "site.yaml", "a" * 64, ["h1"], node("a")) is True
    assert board.start_or_join("r", "site.yaml", "a" * 64, ["h1", "h2"], node("b")) is False
    with pytest.raises(InputError) as refused:
        board.start_or_join("r", "other.yaml", "b" * 64, ["h1"], node("c"))
    assert "rollout r runs site.yaml" in str(refused.value) and "\n" not in str(refused.value)
    assert board.host_names("r") == ["h1"]  # the first node's hosts make the rollout


def test_a_node_that_leaves_gives_its_hosts_back_at_once(board):
    me, other = node("a"), node("b")
    board.start_or_join("r", "p.yaml", "sha", ["h1", "h2"], me)
    board.claim("r", me, ["h1", "h2"])
    board.leave("r", me)
    assert board.claim("r", other, ["h1"]).host_name == "h1"  # no lease to wait out
    assert {n.node: n.state for n in board.status("r").nodes} == {"a": "finished"}


def test_status_says_who_holds_what_until_when_and_why_a_host_failed(board):
    a, b = node("a"), node("b")
    board.start_or_join("r", "p.yaml", "sha", ["h1", "h2", "h3"], a)
    board.start_or_join("r", "p.yaml", "sha", [], b)
    one = board.claim("r", a, ["h1"])
    board.finish("r", "h1", a, one.token, "failed", "license", "license: the account refused the order")
    board.claim("r", b, ["h2"])
    status = board.status("r").to_json()
    assert status["complete"] is False and status["counts"]["pending"] == 1
    by_host = {h["host"]: h for h in status["hosts"]}
    assert by_host["h1"] == {
        "host": "h1",
        "state": "failed",
        "node": "a",
        "claims": 1,
        "failed_step": "license",
        "error": "license: the account refused the order",
    }
    assert by_host["h2"]["node"] == "b" and by_host["h2"]["lease_until"] > status["now"] + 25
    assert {n["node"]: n["hosts"] for n in status["nodes"]} == {"a": {"failed": 1}, "b": {"claimed": 1}}


def test_a_sqlite_ledger_is_refused_before_a_file_is_made(tmp_path):
    with pytest.raises(InputError, match="PostgreSQL ledger: set ledger_url") as refused:
        RolloutBoard(tmp_path / "ledger.sqlite")
    assert not (tmp_path / "ledger.sqlite").exists() and "\n" not in str(refused.value)
