"""A shared rollout as one run's result, read from the ledger's rollout tables, so the run report
formats (JSON, JUnit, HTML: agent/runner/report.py, htmlreport.py) cover the whole rollout from any
node: every host, whichever node ran its steps, with the node and the claims it took."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from agent.ledger.rollouts import RolloutBoard, RolloutHost, RolloutStatus, StepRow
from agent.runner.events import HostOutcome, StepRecord
from agent.runner.run import RunResult
from agent.secrets import printable


def rollout_result(board: RolloutBoard, name: str, addresses: Mapping[str, str]) -> RunResult | None:
    """Rollout `name` as the ledger has it now (None: no such rollout). `addresses`: host name -> address
    from the reader's inventory (a host it does not list is reported with an empty address)."""
    status = board.status(name)
    if status is None:
        return None
    return result_of(status, board.steps(name), addresses)


def result_of(
    status: RolloutStatus, steps: Mapping[str, list[tuple[StepRow, float]]], addresses: Mapping[str, str]
) -> RunResult:
    ended = [when for rows in steps.values() for _, when in rows]
    result = RunResult(
        run_id=f"rollout:{status.name}",
        playbook=status.playbook,
        inventory="",
        started_at=_iso(status.started_at),
        dry_run=False,
        hosts=[_host(h, steps.get(h.name, []), addresses.get(h.name, ""), status) for h in status.hosts],
        finished_at=_iso(max(ended, default=status.now)) if status.complete else _iso(status.now),
    )
    if not status.complete:
        # The report's contract has no "in progress": the run is as unfinished as an interrupted one.
        left = status.count("pending", "claimed")
        result.status, result.reason = "interrupted", f"rollout not complete: {left} host(s) pending or claimed"
    return result


def _host(host: RolloutHost, rows: list[tuple[StepRow, float]], address: str, status: RolloutStatus) -> HostOutcome:
    # What the ledger holds was written by other processes, other versions: escaped like a host's output.
    records = tuple(StepRecord(r.step, r.status, r.changed, r.duration_s, printable(r.message)) for r, _ in rows)
    rollout = {"node": host.node, "claims": host.claims, "state": host.state}
    if host.state in ("ok", "changed", "failed", "unreachable"):
        error = printable(host.error) if host.error is not None else None
        state = host.state  # one of HostStatus's finished values, checked just above
        return HostOutcome(host.name, address, state, records, error, {"rollout": rollout})  # type: ignore[arg-type]
    if host.state == "claimed":
        expired = host.lease_until is not None and host.lease_until <= status.now
        doing = "its lease ran out, waiting for another node" if expired else "in progress"
        why = f"claimed by {host.node}: {doing}"
    else:
        why = "pending: no node has claimed it yet"
    return HostOutcome(host.name, address, "skipped", records, why, {"rollout": rollout})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
