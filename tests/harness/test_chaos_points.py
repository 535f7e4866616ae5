"""harness/chaos.py's chained kill points, without the lab: where each point lands in its segment,
and whether a killed segment's journal shows the point really fired."""

from __future__ import annotations

from harness import chaos

HOSTS = ["h1", "h2", "h3", "h4"]


def _host_done(host: str, *steps: str, status: str = "changed") -> list[dict]:
    return [
        {"event": "host_started", "host": host},
        *({"event": "step_finished", "host": host, "step": step, "status": "changed"} for step in steps),
        {"event": "host_finished", "host": host, "status": status},
    ]


def test_a_fresh_run_expects_every_event_once_per_host():
    expected = chaos.expected_events([], HOSTS)
    assert expected["run_started"] == expected["batch_finished"] == expected["run_finished"] == 1
    assert {kind: n for kind, n in expected.items() if kind not in chaos.ONCE_PER_RUN} == dict.fromkeys(
        (kind for kind in chaos.FLOW_ORDER if kind not in chaos.ONCE_PER_RUN), 4
    )


def test_a_resume_expects_nothing_from_finished_hosts_and_only_redone_or_unfinished_steps():
    events = [
        {"event": "run_started"},
        *_host_done("h1", *chaos.STEPS),
        {"event": "host_started", "host": "h2"},
        *(
            {"event": "step_finished", "host": "h2", "step": step, "status": "ok"}
            for step in ("facts", "preflight", "license", "installer")
        ),
        {"event": "host_started", "host": "h3"},
        {"event": "step_finished", "host": "h3", "step": "facts", "status": "ok"},
        {"event": "step_finished", "host": "h3", "step": "preflight", "status": "failed"},
        *_host_done("h4", "facts", status="failed"),
    ]
    expected = chaos.expected_events(events, HOSTS)
    assert expected["host_started"] == expected["host_finished"] == 3  # h1 is done; a failed h4 is redone
    assert expected["step_started:license"] == 3  # redone on resume wherever the host is not done
    assert expected["step_finished:installer"] == 2  # h2 finished it: not redone
    assert expected["step_started:preflight"] == 3
    assert expected["step_started:report"] == 3


def test_a_resume_of_a_finished_run_expects_no_host_and_no_batch():
    events = [{"event": "run_started"}, *(e for host in HOSTS for e in _host_done(host, *chaos.STEPS))]
    expected = chaos.expected_events(events, HOSTS)
    assert expected["batch_finished"] == expected["host_started"] == expected["step_started:facts"] == 0
    assert expected["run_started"] == expected["run_finished"] == 1


def test_occurrences_are_spread_over_the_events_their_segment_will_journal():
    at = {name: chaos.ChainPoint("step_finished:license", name) for name in ("first", "1/4", "1/2", "last")}
    assert [at[name].occurrence(50) for name in at] == [1, 13, 25, 50]
    assert [at[name].occurrence(1) for name in at] == [1, 1, 1, 1]
    assert chaos.ChainPoint("host_started", "random:0.001").occurrence(50) == 1
    assert chaos.ChainPoint("host_started", "random:0.999").occurrence(50) == 50


def test_a_point_fired_only_if_the_killed_segment_holds_its_nth_event():
    events = [
        {"event": "run_started"},
        {"event": "step_finished", "step": "license"},
        {"event": "step_finished", "step": "license"},
        {"event": "run_started"},
        {"event": "step_finished", "step": "license"},
        {"event": "step_finished", "step": "installer"},
    ]
    assert chaos._fired(events, "step_finished:license@1")
    assert not chaos._fired(events, "step_finished:license@2")  # the two before belong to an earlier segment
    assert chaos._fired(events, "step_finished@2")
    assert chaos._fired(events, "run_started@1")
    assert not chaos._fired(events, "host_finished@1")


def test_the_matrix_has_every_kind_at_every_fraction_and_seeded_random_points():
    points = chaos.chain_points(["first", "1/4", "1/2", "last"], 30, seed=7)
    assert {p.kind for p in points if p.at == "first"} == set(chaos.FLOW_ORDER) == set(chaos.KILL_POINTS)
    for fraction in ("1/4", "1/2", "last"):
        assert {p.kind for p in points if p.at == fraction} == set(chaos.FLOW_ORDER) - set(chaos.ONCE_PER_RUN)
    drawn = [p for p in points if p.at.startswith("random:")]
    assert not {p.kind for p in drawn} & set(chaos.ONCE_PER_RUN)
    assert len(drawn) == 30 and drawn == [p for p in chaos.chain_points([], 30, seed=7)]
    assert drawn != chaos.chain_points([], 30, seed=8)
    assert [chaos.FLOW_ORDER.index(p.kind) for p in drawn] == sorted(chaos.FLOW_ORDER.index(p.kind) for p in drawn)
