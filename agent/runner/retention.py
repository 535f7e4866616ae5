"""Retention of run journals: `ispagent runs prune` and the prune a scheduled job runs after each run.

Every run leaves a directory of events and host logs (about 1.3 MB for a 30-host install), so a
nightly job over a fleet grows without bound unless old runs go. A run that can still be resumed
(interrupted, aborted, hosts failed, or killed while running) is kept unless asked, and a run whose
process is alive is never removed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.errors import InputError
from agent.runner.journal import RunRecord, list_runs


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]
    kept_resumable: tuple[str, ...]  # would have gone by age or count, kept because they can be resumed
    kept_running: tuple[str, ...]  # their process is alive
    freed_bytes: int


def resumable(record: RunRecord) -> bool:
    """`run --resume` would still do something: not a dry run, and not finished with every host done."""
    if record.options.get("dry_run"):
        return False
    if record.status != "finished":
        return True
    summary = record.summary or {}
    return any(summary.get(status) for status in ("failed", "unreachable", "skipped"))


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_runs(
    state_dir: Path,
    *,
    keep: int | None = None,
    older_than_days: float | None = None,
    include_resumable: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Remove journaled runs beyond the newest `keep`, and/or started more than `older_than_days` ago.

    With both, a run goes when either says so. Resumable runs stay unless `include_resumable`
    (they are kept on top of the `keep` newest); a run whose process is alive always stays.
    """
    if keep is None and older_than_days is None:
        raise InputError("say what to keep: --keep N and/or --older-than DAYS")
    if keep is not None and keep < 0 or older_than_days is not None and older_than_days < 0:
        raise InputError("--keep and --older-than take a number of 0 or more")
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days) if older_than_days is not None else None
    removed, kept_resumable, kept_running, freed = [], [], [], 0
    for index, record in enumerate(list_runs(state_dir)):  # newest first
        beyond_count = keep is not None and index >= keep
        too_old = cutoff is not None and _started(record) < cutoff
        if not (beyond_count or too_old):
            continue
        if record.status == "running" and process_alive(record.pid):
            kept_running.append(record.run_id)
            continue
        if resumable(record) and not include_resumable:
            kept_resumable.append(record.run_id)
            continue
        directory = state_dir / "runs" / record.run_id
        freed += _size(directory)
        if not dry_run:
            shutil.rmtree(directory)
        removed.append(record.run_id)
    return PruneResult(tuple(removed), tuple(kept_resumable), tuple(kept_running), freed)


def _started(record: RunRecord) -> datetime:
    try:
        started = datetime.fromisoformat(record.started_at)
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)  # unreadable: never "too old"
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
