"""runs prune: old journals go, resumable and live runs stay unless asked."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from agent.cli.main import cli
from agent.runner.journal import Journal, RunRecord, list_runs
from agent.runner.retention import prune_runs

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)


def journal_runs(state_dir, count=50):
    """`count` runs, one a day back from NOW: every 10th interrupted, every 7th with a failed host,
    the newest still running in this process, one dry run interrupted."""
    for day in range(count):
        started = NOW - timedelta(days=day, hours=1)
        run_id = started.strftime("%Y%m%dT%H%M%S") + f"-{day:06x}"
        status = "interrupted" if day % 10 == 5 else "running" if day == 0 else "finished"
        summary = {"ok": 3, "changed": 0, "failed": 1 if day % 7 == 3 else 0, "unreachable": 0, "skipped": 0}
        record = RunRecord(
            run_id,
            "/p.yaml",
            "x",
            "/i.yaml",
            ["a", "b", "c", "d"],
            {"dry_run": day == 15},
            started.isoformat(timespec="seconds"),
            status,
            summary=summary,
            pid=os.getpid() if day == 0 else 999_999_999,
        )
        journal = Journal(state_dir, run_id)
        journal.write_record(record)
        (journal.dir / "events.jsonl").write_text(json.dumps({"event": "run_started"}) + "\n" * 100)
    return [record.run_id for record in list_runs(state_dir)]


def test_prune_keep_on_50_runs_keeps_the_newest_and_every_resumable_one(tmp_path):
    ids = journal_runs(tmp_path)
    assert len(ids) == 50
    result = prune_runs(tmp_path, keep=10, now=NOW)
    left = [record.run_id for record in list_runs(tmp_path)]
    resumable_old = [i for day, i in enumerate(ids) if day >= 10 and (day % 10 == 5 and day != 15 or day % 7 == 3)]
    assert left == ids[:10] + resumable_old
    assert set(result.kept_resumable) == set(resumable_old)
    assert len(result.removed) == 50 - len(left) and result.freed_bytes > 0
    assert ids[15] in result.removed  # an interrupted dry run has nothing to finish


def test_older_than_and_include_resumable_never_remove_a_live_run(tmp_path):
    ids = journal_runs(tmp_path)
    result = prune_runs(tmp_path, older_than_days=0, include_resumable=True, now=NOW)
    assert [record.run_id for record in list_runs(tmp_path)] == [ids[0]]  # its process (this one) is alive
    assert result.kept_running == (ids[0],)


def test_older_than_days_uses_the_start_time(tmp_path):
    ids = journal_runs(tmp_path)
    prune_runs(tmp_path, older_than_days=20, now=NOW)
    left = {record.run_id for record in list_runs(tmp_path)}
    assert set(ids[:20]) <= left and ids[25] in left and ids[21] not in left and ids[45] in left  # 25, 45: interrupted


def test_cli_prune_dry_run_removes_nothing_and_needs_a_rule(tmp_path):
    journal_runs(tmp_path, 12)
    result = CliRunner().invoke(cli, ["runs", "prune", "--state-dir", str(tmp_path), "--keep", "2", "--dry-run"])
    assert result.exit_code == 0 and "would remove" in result.output
    assert len(list_runs(tmp_path)) == 12
    result = CliRunner().invoke(cli, ["runs", "prune", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--keep N and/or --older-than DAYS" in result.output
