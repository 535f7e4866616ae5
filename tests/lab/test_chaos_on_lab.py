"""The kill matrix of harness/chaos.py, reduced for CI: the install flow over three lab hosts,
SIGKILLed in turn right after every kind of journal event and after the last host's money events
(license, installer, report): one rollout, each resume killed at the next point. Then it is resumed
to the end and checked: one license per host, no duplicate, licid = account, one billed activation
per license, nothing duplicated between two kills, a second run that changes and orders nothing, no
traceback. One single-point trial keeps the unchained mode honest."""

from __future__ import annotations

import pytest

from agent.lab.mirror import write_config

pytestmark = pytest.mark.lab

from harness import chaos

MONEY = [f"step_{edge}:{step}" for step in ("license", "installer", "report") for edge in ("started", "finished")]


@pytest.fixture
def quick_installer(lab):
    """The emulated installer without its pauses (the kill points, not the install, are under test)."""
    mirror = lab.dir / "services" / "mirror"
    write_config(mirror, install_seconds=0)
    yield lab
    (mirror / "config.json").unlink(missing_ok=True)


def _assert_clean(trial) -> None:
    print("\n" + chaos.table([trial]) + "\nfired: " + " ".join(trial.fired))
    assert (trial.duplicates, trial.unlicensed, trial.lost_activations, trial.tracebacks) == (0, 0, 0, 0), trial
    assert trial.problems == []


def test_every_kill_point_in_the_install_flow_is_covered_by_the_bench():
    assert set(chaos.KILL_POINTS) == set(chaos.FLOW_ORDER)
    assert {f"step_{edge}:{step}" for step in chaos.STEPS for edge in ("started", "finished")} <= set(chaos.KILL_POINTS)


def test_a_kill_after_every_kind_of_event_and_the_last_money_events_keeps_every_invariant(quick_installer, tmp_path):
    points = sorted(
        [
            *(chaos.ChainPoint(kind, "first") for kind in chaos.FLOW_ORDER),
            *(chaos.ChainPoint(kind, "last") for kind in MONEY),
        ],
        key=lambda point: chaos.FLOW_ORDER.index(point.kind),
    )
    # A "last" point whose events all landed in one journal write with the kill before it has no
    # event left in its rollout: run_chains gives it another rollout (rare; one rollout as a rule).
    trials = chaos.run_chains(quick_installer, quick_installer.hosts[:3], points, tmp_path, chain=len(points))
    fired = [point for trial in trials for point in trial.fired]
    assert len(fired) == len(points), f"only {fired} of {len(points)} points fired"
    for trial in trials:
        _assert_clean(trial)


def test_sigkill_after_one_event_then_one_resume_keeps_every_invariant(quick_installer, tmp_path):
    trial = chaos.kill_trial(quick_installer, quick_installer.hosts[:2], "step_finished:license@2", tmp_path)
    assert trial.killed and trial.fired == ["step_finished:license@2"]
    _assert_clean(trial)


def test_the_checks_see_a_duplicate_license_and_a_host_without_one(lab, tmp_path):
    """The invariants can fail: two licenses ordered for one host, none for the other."""
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    hosts = lab.hosts[:2]
    rollout = chaos._prepare(lab, hosts, tmp_path)
    settings = settings_from_vars({**rollout.service_vars, "partner_credentials_file": str(rollout.credentials)})
    with PartnerClient(settings) as client:
        for n in (1, 2):
            client.order("lite", "monthly", hosts[0].address, f"twice-{n}", f"twice-{n}")
    trial = chaos.Trial("check", "none", len(hosts))
    chaos._check_so_far(rollout, hosts, trial, after="two orders")
    assert trial.duplicates == 1 and any("duplicate" in problem for problem in trial.problems), trial
    account = chaos._account(rollout.service_vars, rollout.credentials)
    chaos._check_invariants(lab, hosts, account, rollout.ledger_path, trial)
    assert (trial.duplicates, trial.unlicensed, trial.lost_activations) == (1, 1, 2), trial
