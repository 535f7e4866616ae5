"""What a run reports as it goes. The journal writes these durably; the CLI renders them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

HostStatus = Literal["ok", "changed", "failed", "unreachable", "skipped"]


@dataclass(frozen=True)
class StepRecord:
    """One step's outcome on one host: a line of the report and of the journal."""

    step: str
    status: str  # ok | changed | skipped | failed
    changed: bool
    duration_s: float
    message: str
    data: dict[str, Any] | None = None  # not journaled: facts, diffs (may be large)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status,
            "changed": self.changed,
            "duration_s": round(self.duration_s, 3),
            "message": self.message,
        }


@dataclass(frozen=True)
class HostOutcome:
    name: str
    address: str
    status: HostStatus
    steps: tuple[StepRecord, ...]
    error: str | None
    report: dict[str, Any] = field(default_factory=dict)  # extra report keys from the steps


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    hosts: int
    resumed: bool


@dataclass(frozen=True)
class HostStarted:
    host: str


@dataclass(frozen=True)
class StepStarted:
    host: str
    step: str


@dataclass(frozen=True)
class StepFinished:
    host: str
    record: StepRecord
    # The host goes on only once the journal has this on disk. False where doing the step again
    # after a crash is harmless (a resumed run redoes it, or it repeats safely): not journaled.
    durable: bool = True


@dataclass(frozen=True)
class HostFinished:
    outcome: HostOutcome


@dataclass(frozen=True)
class BatchFinished:
    index: int
    hosts: int
    failed_percent: float


@dataclass(frozen=True)
class RunFinished:
    status: str  # finished | aborted | interrupted
    reason: str | None


Event = RunStarted | HostStarted | StepStarted | StepFinished | HostFinished | BatchFinished | RunFinished


class RunListener(Protocol):
    def __call__(self, event: Event) -> None: ...


def event_to_json(event: Event) -> dict[str, Any]:
    if isinstance(event, StepFinished):
        return {"event": "step_finished", "host": event.host, **event.record.to_json()}
    if isinstance(event, HostFinished):
        outcome = event.outcome
        return {
            "event": "host_finished",
            "host": outcome.name,
            "status": outcome.status,
            "error": outcome.error,
            "report": outcome.report,
        }
    name = {
        RunStarted: "run_started",
        HostStarted: "host_started",
        StepStarted: "step_started",
        BatchFinished: "batch_finished",
        RunFinished: "run_finished",
    }[type(event)]
    return {"event": name, **asdict(event)}
