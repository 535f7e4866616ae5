"""A run's metrics as a Prometheus textfile (node_exporter's textfile collector reads the directory).

Written with prometheus_client, atomically (a scrape never sees half a file), also for a run that
failed, was interrupted or could not start: monitoring must see the last attempt, not the last
success. The time of the last success is carried over from the file the previous run left.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.errors import InputError
from agent.inputfile import read_input_bytes
from agent.runner.run import FAILED_STATUSES, RunResult

HOST_RESULTS = ("ok", "changed", "failed", "unreachable", "skipped")
LICENSE_ACTIONS = ("ordered", "adopted", "reused", "existing", "none")
LAST_SUCCESS = "ispagent_last_success_timestamp_seconds"
MAX_METRICS_BYTES = 1024 * 1024  # ours is a few kB


def succeeded(result: RunResult) -> bool:
    """Finished with no host failed or unreachable (unconfirmed activations still count as success)."""
    return result.status == "finished" and not any(host.status in FAILED_STATUSES for host in result.hosts)


def previous_last_success(path: Path) -> float | None:
    """The last-success time in the metrics file an earlier run wrote, if it is there and readable."""
    from prometheus_client.parser import text_string_to_metric_families

    # Read like every other input: a FIFO here hung the run holding the inventory lock, and a link
    # to /dev/zero read until MemoryError.
    try:
        text = read_input_bytes(path, InputError, what="metrics file", max_bytes=MAX_METRICS_BYTES).data.decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except (InputError, ValueError):
        return None
    return None


def metrics_text(result: RunResult | None, *, exit_code: int, now: float, last_success: float | None) -> bytes:
    """The textfile for `result` (None: the run could not start) in Prometheus' text format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()

    def gauge(name: str, text: str, value: float | None = None, **labels: str) -> Gauge:
        metric = Gauge(name, text, list(labels), registry=registry)
        if value is not None:
            (metric.labels(**labels) if labels else metric).set(value)
        return metric

    gauge(
        "ispagent_run_exit_code",
        "Exit code of the last run (0 ok, 1 hosts failed, 2 input, 3 aborted, "
        "4 activations unconfirmed, 130 interrupted).",
        exit_code,
    )
    gauge("ispagent_run_timestamp_seconds", "When the last run ended (or failed to start).", now)
    if result is not None and succeeded(result):
        last_success = now
    if last_success is not None:
        gauge(LAST_SUCCESS, "When a run last finished with no host failed or unreachable.", last_success)
    if result is None:
        return generate_latest(registry)
    gauge("ispagent_run_duration_seconds", "Wall time of the last run.", _duration(result, now))
    gauge("ispagent_run_dry", "1 when the last run was a dry run.", float(result.dry_run))
    hosts = gauge("ispagent_run_hosts", "Hosts of the last run by result.", None, result="")
    for status in HOST_RESULTS:
        hosts.labels(result=status).set(result.count(status))
    if any("drift" in host.report for host in result.hosts):
        drift = gauge("ispagent_run_drift_hosts", "Hosts of a drift-only run by what the audit found.", None, state="")
        drifted = len(result.drifted())
        drift.labels(state="drifted").set(drifted)
        drift.labels(state="clean").set(sum(1 for host in result.hosts if "drift" in host.report) - drifted)
    licenses = gauge("ispagent_run_licenses", "Licenses the last run's license step took, by action.", None, action="")
    actions = [str((host.report.get("license") or {}).get("action")) for host in result.hosts]
    for action in LICENSE_ACTIONS:
        licenses.labels(action=action).set(actions.count(action))
    _standing(result, gauge)
    return generate_latest(registry)


def _standing(result: RunResult, gauge: Callable[..., object]) -> None:
    standing = result.standing
    if standing is None:
        return
    gauge(
        "ispagent_activations_unconfirmed",
        "Activations of the run's hosts the partner account has not confirmed yet.",
        len(standing.unconfirmed),
    )
    gauge("ispagent_licenses_expiring", "Live account licenses expiring within 30 days.", len(standing.expiring))
    gauge(
        "ispagent_standing_problems", "What could not be read from the ledger or the account.", len(standing.problems)
    )
    if standing.turnover is not None:
        gauge(
            "ispagent_turnover_month",
            "This month's ISPmanager 6 turnover so far (list basis, program currency).",
            float(standing.turnover),
        )
        gauge("ispagent_tier", "The partner tier now (0: the first).", standing.tier)
        gauge(
            "ispagent_months_under_minimum",
            "Complete months in a row under the program's minimum.",
            standing.months_under,
        )


def _duration(result: RunResult, now: float) -> float:
    try:
        started = datetime.fromisoformat(result.started_at).timestamp()
        ended = datetime.fromisoformat(result.finished_at).timestamp() if result.finished_at else now
    except ValueError:
        return 0.0
    return max(0.0, ended - started)


def write_metrics(path: Path, result: RunResult | None, *, exit_code: int, now: float | None = None) -> None:
    """Write the textfile atomically; the last success time survives a failed run."""
    import time

    from agent.atomicfile import write_output

    moment = time.time() if now is None else now
    text = metrics_text(result, exit_code=exit_code, now=moment, last_success=previous_last_success(path))
    write_output(path, text, "metrics file")
