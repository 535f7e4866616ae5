"""A journaled run read back as the RunResult its reports are rendered from (`ispagent runs show`).

The nightly job's run can then be looked at the next morning, in the same JSON, JUnit and HTML as
`run --report-*` would have written, without having asked for a report in advance. Everything comes
from the run's directory: run.json (what was run, how it ended, the hosts' addresses, the account's
standing after the hosts) and events.jsonl (each host's steps and end, as `--resume` reads them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast, get_args

from agent.errors import InputError
from agent.runner.events import HostOutcome, HostStatus, StepRecord
from agent.runner.journal import Journal, RunRecord
from agent.runner.run import RunResult
from agent.runner.standing import AccountStanding, priced
from agent.secrets import shown


def recorded_result(state_dir: Path, run_id: str) -> RunResult:
    """The result of run `run_id` from its journal; InputError (one line) when there is no such run."""
    journal = Journal(state_dir, run_id)
    record = journal.read_record()
    host_status, finished_steps = journal.finished_work()
    standing = _standing(record, journal)
    addresses = record.addresses or {}
    hosts = [
        _outcome(name, addresses.get(name, ""), host_status.get(name), finished_steps.get(name) or {}, record)
        for name in record.hosts
    ]
    return RunResult(
        run_id=record.run_id,
        playbook=record.playbook,
        inventory=record.inventory,
        started_at=record.started_at,
        dry_run=bool(record.options.get("dry_run")),
        hosts=priced(hosts, standing),
        finished_at=record.finished_at,
        status=record.status,
        reason=record.reason,
        standing=standing,
    )


def _outcome(
    name: str, address: str, finished: dict[str, Any] | None, steps: dict[str, StepRecord], record: RunRecord
) -> HostOutcome:
    """A host as the run ended it: its last host_finished event, or not run (as the runner says of it)."""
    if finished is None:
        # What the runner reports for a host it never finished: skipped, with the run's reason.
        return HostOutcome(
            name,
            address,
            "skipped",
            tuple(steps.values()) if record.status == "running" else (),
            f"not run: {record.reason or 'run stopped early'}",
        )
    report = finished.get("report")
    error = finished.get("error")
    return HostOutcome(
        name,
        address,
        _status(finished.get("status")),
        tuple(steps.values()),
        error if isinstance(error, str) else None,
        report if isinstance(report, dict) else {},
    )


def _standing(record: RunRecord, journal: Journal) -> AccountStanding | None:
    if record.standing is None:
        return None
    try:
        return AccountStanding.from_report(record.standing)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{journal.record_path}: unreadable account standing: {shown(str(error))}") from None


def _status(value: object) -> HostStatus:
    """The journaled status; one the runner never writes (a damaged event) reads as failed, not as done."""
    return cast(HostStatus, value) if value in get_args(HostStatus) else "failed"
