"""Drift-only runs: audit every host read-only first, change only the hosts whose audit is not clean.

The audit is the playbook's own read-only steps (facts, preflight, verify in reprovision.yaml),
journaled under `audit:<step>` ids in the same run. A failing audit step is a finding, not a host
failure: it is journaled as `ok` with the message `drift: ...`, and the host then runs the whole
playbook. A clean host is left alone, which is what makes a nightly reprovision over a whole fleet
cheap. Two things the read-only steps cannot see also count as drift: an activation the partner
account has not confirmed yet (only the playbook's report step retries it), and changing steps an
interrupted earlier execution of this run had started on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.runner.events import StepRecord
from agent.runner.playbook import Playbook, PlaybookStep

if TYPE_CHECKING:
    from agent.ledger.licenses import LicenseLedger


AUDIT_PREFIX = "audit:"
DRIFT_PREFIX = "drift: "


@dataclass(frozen=True)
class Audit:
    """What the read-only pass found on one host."""

    records: tuple[StepRecord, ...]
    reasons: tuple[str, ...]

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)

    def to_report(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "reasons": list(self.reasons)}


def audit_steps(playbook: Playbook) -> list[PlaybookStep]:
    """The playbook's read-only steps, in order: what the audit runs."""
    return [planned for planned in playbook.steps if planned.type.read_only]


def audit_id(planned: PlaybookStep) -> str:
    return AUDIT_PREFIX + planned.id


def as_finding(record: StepRecord) -> StepRecord:
    """An audit step's record as journaled: a failure is what the audit found, not a failed host."""
    if record.status != "failed":
        return record
    return StepRecord(record.step, "ok", False, record.duration_s, DRIFT_PREFIX + record.message, record.data)


def audit_host(
    steps: Iterable[PlaybookStep],
    run_step: Callable[[PlaybookStep], StepRecord],
    known_reasons: Iterable[str] = (),
) -> Audit:
    """Run `steps` with `run_step` (which journals them as findings) until one finds drift."""
    records: list[StepRecord] = []
    reasons = list(known_reasons)
    for planned in steps:
        record = run_step(planned)
        records.append(record)
        if record.message.startswith(DRIFT_PREFIX):
            reasons.append(f"{planned.id}: {record.message.removeprefix(DRIFT_PREFIX)}")
            break  # later read-only steps build on this one (verify reads preflight's state)
    return Audit(tuple(records), tuple(reasons))


def interrupted_changes(playbook: Playbook, carried: dict[str, StepRecord]) -> list[str]:
    """Why a host must be treated as drifted on resume: changing steps had already run on it."""
    changing = [p.id for p in playbook.steps if not p.type.read_only and p.id in carried]
    if not changing:
        return []
    return [f"run interrupted after {', '.join(changing)} had started changing the host"]


def unconfirmed_activations(ledger: LicenseLedger, host_name: str) -> list[str]:
    """Activations of this host the partner account has not confirmed (the report step retries them)."""
    pending = ledger.activations(host_name, state="pending")
    return [
        f"report: activation of license {activation.license_id} not yet confirmed by the account"
        for activation in pending
    ]
