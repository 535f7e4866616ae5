"""--metrics-file: a Prometheus textfile, read back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from runkit import standing_with_unconfirmed, twenty_host_result

from agent.runner.metrics import LAST_SUCCESS, write_metrics
from agent.runner.report import build_report


def samples(path) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_parsed_back_match_the_json_report(tmp_path):
    result = twenty_host_result(failures=3, **standing_with_unconfirmed())
    path = tmp_path / "ispagent.prom"
    write_metrics(path, result, exit_code=result.exit_code, now=1_800_000_000.0)
    values = samples(path)
    report = build_report(result)
    for status in ("ok", "changed", "failed", "unreachable", "skipped"):
        assert values[("ispagent_run_hosts", ("result", status))] == report["summary"][status]
    assert values[("ispagent_run_exit_code",)] == 1
    assert values[("ispagent_run_duration_seconds",)] == 200
    actions = [host["license"]["action"] for host in report["hosts"]]
    assert values[("ispagent_run_licenses", ("action", "ordered"))] == actions.count("ordered") == 1
    assert values[("ispagent_run_licenses", ("action", "existing"))] == actions.count("existing")
    assert values[("ispagent_activations_unconfirmed",)] == len(report["account"]["unconfirmed_activations"]) == 1
    assert values[("ispagent_licenses_expiring",)] == 1
    assert values[("ispagent_turnover_month",)] == 120.0 and values[("ispagent_tier",)] == 1
    assert values[("ispagent_months_under_minimum",)] == 0
    assert (LAST_SUCCESS,) not in values  # hosts failed: no success yet, none carried over


def test_last_success_is_carried_over_a_failed_run_and_moves_on_a_good_one(tmp_path):
    path = tmp_path / "ispagent.prom"
    good = twenty_host_result(failures=0)
    write_metrics(path, good, exit_code=good.exit_code, now=1000.0)
    assert samples(path)[(LAST_SUCCESS,)] == 1000.0
    bad = twenty_host_result(failures=2)
    write_metrics(path, bad, exit_code=bad.exit_code, now=2000.0)
    values = samples(path)
    assert values[(LAST_SUCCESS,)] == 1000.0 and values[("ispagent_run_timestamp_seconds",)] == 2000.0
    write_metrics(path, None, exit_code=3, now=3000.0)  # could not start (lock held)
    values = samples(path)
    assert values[(LAST_SUCCESS,)] == 1000.0 and values[("ispagent_run_exit_code",)] == 3
    assert not any(key[0] == "ispagent_run_hosts" for key in values)


def test_drift_counts_and_exit_4_for_unconfirmed_activations(tmp_path):
    from runkit import outcome

    from agent.runner.run import RunResult
    from agent.runner.standing import AccountStanding, Unconfirmed

    hosts = [
        outcome(f"h{i}", "changed" if i <= 3 else "ok", drift=["verify: drift"] if i <= 3 else []) for i in range(1, 21)
    ]
    result = RunResult(
        "r",
        "p",
        "i",
        "2026-11-26T02:00:00+00:00",
        False,
        hosts,
        "2026-11-26T02:00:10+00:00",
        standing=AccountStanding(unconfirmed=(Unconfirmed("h1", "1", 1),)),
    )
    assert result.exit_code == 4
    path = tmp_path / "m.prom"
    write_metrics(path, result, exit_code=result.exit_code, now=5.0)
    values = samples(path)
    assert values[("ispagent_run_drift_hosts", ("state", "drifted"))] == 3
    assert values[("ispagent_run_drift_hosts", ("state", "clean"))] == 17
    assert values[(LAST_SUCCESS,)] == 5.0  # unconfirmed activations are not a failed run
