"""Retention of run journals: `ispagent runs prune` and the prune a scheduled job runs after each run.

Every run leaves a directory of events and host logs (about 1.3 MB for a 30-host install), so a
nightly job over a fleet grows without bound unless old runs go. A run that can still be resumed
(interrupted, aborted, hosts failed, or killed while running) is kept unless asked, and a run whose
process is alive is never removed.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.errors import InputError, StateDirError
from agent.runner.journal import RunRecord, scan_runs


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]
    kept_resumable: tuple[str, ...]  # would have gone by age or count, kept because they can be resumed
    kept_running: tuple[str, ...]  # their process is alive
    freed_bytes: int
    skipped: str | None = None  # the one line naming what under runs/ is not a run journal (left alone)


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
    cutoff = (
        (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days) if older_than_days is not None else None
    )
    removed, kept_resumable, kept_running, freed = [], [], [], 0
    listing = scan_runs(state_dir)
    for index, record in enumerate(listing.records):  # newest first
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
        # record.run_id is the directory's checked name (scan_runs), never a field of run.json: a
        # planted record with an id of `../..` or `/etc` must not choose what a root job deletes.
        directory = state_dir / "runs" / record.run_id
        freed += _size(directory)
        if not dry_run:
            _remove(directory)
        removed.append(record.run_id)
    return PruneResult(
        tuple(removed), tuple(kept_resumable), tuple(kept_running), freed, listing.skipped_line(state_dir)
    )


def _started(record: RunRecord) -> datetime:
    try:
        started = datetime.fromisoformat(record.started_at)
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)  # unreadable: never "too old"
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def _size(directory: Path) -> int:
    """Bytes of the regular files under `directory`, links neither followed nor counted."""
    total = 0
    for parent, _, names in os.walk(directory):
        for name in names:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def _remove(directory: Path) -> None:
    # rmtree removes links inside without following them (it walks by descriptor where it can).
    try:
        shutil.rmtree(directory)
    except FileNotFoundError:
        return  # another prune got there first
    except OSError as error:
        raise StateDirError(
            f"state dir: cannot remove {directory} ({error.strerror or error}); fix its "
            "permissions, or remove it by hand"
        ) from None
