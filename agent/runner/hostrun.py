"""One host's run of a playbook's steps over an open connection: no journal, no lock, no pool.

`run_host` is what the runner calls for every host it claims; a Python caller may call it on a
HostContext of its own (a connection it opened, services it owns) with any listener.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Mapping

from agent.errors import HostUnreachable, IspagentError
from agent.runner.context import HostContext
from agent.runner.drift import as_finding, audit_id
from agent.runner.events import HostOutcome, HostStatus, RunListener, StepFinished, StepRecord, StepStarted
from agent.runner.playbook import PlaybookStep
from agent.secrets import mask


def run_host(
    context: HostContext,
    steps: Iterable[PlaybookStep],
    listener: RunListener,
    carried: Mapping[str, StepRecord] | None = None,
    records: list[StepRecord] | None = None,
) -> HostOutcome:
    """Run `steps` in order on the host of `context`; the first failure ends the host.

    `carried`: steps a run interrupted earlier finished (by id): not redone unless their step type
    asks to be. `records`: what ran before on this host in this run (a drift audit). Step events go
    to `listener`; starting and finishing the host are the caller's.
    """
    carried = carried or {}
    records = list(records or [])
    try:
        for planned in steps:
            previous = carried.get(planned.id)
            if previous and previous.status != "failed" and not planned.type.rerun_on_resume:
                records.append(previous)  # finished before the run was interrupted: not redone
                continue
            record = run_step(context, planned, listener)
            records.append(record)
            if record.status == "failed":
                return outcome_of(context, "failed", records, f"{planned.id}: {record.message}")
        return outcome_of(context, "changed" if any(r.changed for r in records) else "ok", records, None)
    except HostUnreachable as error:
        return outcome_of(context, "unreachable", records, mask(str(error)))


def run_step(context: HostContext, planned: PlaybookStep, listener: RunListener, audit: bool = False) -> StepRecord:
    """One step on one host, its errors turned into a failed record (HostUnreachable is raised on)."""
    step_id = audit_id(planned) if audit else planned.id
    listener(StepStarted(context.host.name, step_id))
    if not planned.type.read_only:
        context.host_may_change()
    started = time.monotonic()
    try:
        result = planned.type.function(context, planned.params)
        status, message, data = result.status, result.message, result.data
    except HostUnreachable as error:
        record = StepRecord(step_id, "failed", False, time.monotonic() - started, mask(str(error)))
        listener(StepFinished(context.host.name, record))
        raise
    except IspagentError as error:
        status, message, data = "failed", str(error), {}
    except Exception as error:  # a bug in a step must stop this host only, and say where to look
        context.log.write("!", traceback.format_exc())
        message = f"internal error {type(error).__name__}: {error} (traceback in the host log)"
        status, data = "failed", {}
    record = StepRecord(step_id, status, status == "changed", time.monotonic() - started, mask(message), data)
    if audit:
        record = as_finding(record)
    listener(StepFinished(context.host.name, record, _must_be_on_disk(planned, record)))
    return record


def _must_be_on_disk(planned: PlaybookStep, record: StepRecord) -> bool:
    """Must the journal have this step's end on disk before the host goes on? Not when a resumed
    run would do the step again anyway (it failed, it is read-only or rerun on resume), nor when
    doing it again changes nothing."""
    kind = planned.type
    return not (record.status == "failed" or kind.read_only or kind.rerun_on_resume or kind.idempotent)


def outcome_of(context: HostContext, status: HostStatus, records: list[StepRecord], error: str | None) -> HostOutcome:
    host = context.host
    return HostOutcome(host.name, host.address, status, tuple(records), mask(error) if error else None, context.report)
