"""The run journal: durable events, the resume state they give, the per-inventory lock."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import RunAborted
from agent.runner.events import HostFinished, HostOutcome, HostStarted, RunStarted, StepFinished, StepRecord
from agent.runner.journal import InventoryLock, Journal


def _step(name, status):
    return StepRecord(name, status, status == "changed", 0.1, "")


def test_finished_work_keeps_last_status_and_finished_steps(tmp_path):
    journal = Journal(tmp_path, "r1")
    journal.open_events()
    journal(RunStarted("r1", 2, False))
    journal(HostStarted("a"))
    journal(StepFinished("a", _step("facts", "ok")))
    journal(StepFinished("a", _step("upload", "changed")))
    journal(HostFinished(HostOutcome("a", "1.1.1.1", "changed", (), None)))
    journal(HostStarted("b"))
    journal(StepFinished("b", _step("facts", "ok")))
    journal(StepFinished("b", _step("upload", "changed")))  # killed here, before template
    journal.close()
    # A kill can cut the last line short: it must not break resuming.
    with open(journal.events_path, "a") as handle:
        handle.write('{"event": "step_fin')
    status, steps = journal.finished_work()
    assert {host: event["status"] for host, event in status.items()} == {"a": "changed"}
    assert list(steps["b"]) == ["facts", "upload"] and steps["b"]["upload"].status == "changed"


def test_a_resumed_journal_after_a_cut_line_keeps_every_new_event(tmp_path):
    """The resume appends after the killed run's half-written line: its first event must not be
    glued onto it (and lost with it)."""
    journal = Journal(tmp_path, "r1")
    journal.open_events()
    journal(HostStarted("a"))
    journal.close()
    with open(journal.events_path, "a") as handle:
        handle.write('{"event": "step_fin')
    resumed = Journal(tmp_path, "r1")
    resumed.open_events()
    resumed(HostFinished(HostOutcome("a", "1.1.1.1", "changed", (), None)))
    resumed.close()
    status, _ = resumed.finished_work()
    assert {host: event["status"] for host, event in status.items()} == {"a": "changed"}


def test_restarted_host_loses_its_old_final_status(tmp_path):
    journal = Journal(tmp_path, "r1")
    journal.open_events()
    journal(HostFinished(HostOutcome("a", "x", "failed", (), "boom")))
    journal(HostStarted("a"))
    journal.close()
    status, _ = journal.finished_work()
    assert status == {}


def test_events_are_masked(tmp_path):
    from agent.secrets import forget_secrets, register_secret

    register_secret("topsecret-key-99")
    try:
        journal = Journal(tmp_path, "r1")
        journal.open_events()
        journal(StepFinished("a", StepRecord("shell", "failed", False, 0.1, "bad key topsecret-key-99")))
        journal.close()
    finally:
        forget_secrets()
    assert "topsecret" not in journal.events_path.read_text()
    assert json.loads(journal.events_path.read_text())["message"] == "bad key ***"


def test_second_run_on_the_same_inventory_is_refused_while_the_first_holds_the_lock(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from agent.runner.journal import InventoryLock;"
            f"lock = InventoryLock(Path({str(tmp_path)!r}), {str(inventory)!r}, {str(inventory)!r}, 'first').__enter__();"
            "print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunAborted, match=r"run first \(pid \d+\) is already working on these hosts"):
            InventoryLock(tmp_path, str(inventory), str(inventory), "second").__enter__()
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its holder: no stale lock file to clean by hand.
    with InventoryLock(tmp_path, str(inventory), str(inventory), "third"):
        pass


def test_events_from_many_threads_are_all_written_once(tmp_path):
    import threading

    journal = Journal(tmp_path, "r1")
    journal.open_events()

    def host(name):
        for step in range(20):
            journal(StepFinished(name, _step(f"s{step}", "ok")))

    threads = [threading.Thread(target=host, args=(f"h{i}",)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    lines = [json.loads(line) for line in journal.events_path.read_text().splitlines()]
    assert sorted((e["host"], e["step"]) for e in lines) == sorted(
        (f"h{i}", f"s{s}") for i in range(30) for s in range(20)
    )


def test_runs_lists_journaled_runs_newest_first_and_resume_names_it(tmp_path):
    from click.testing import CliRunner

    from agent.cli.main import cli
    from agent.runner.journal import RunRecord

    for run_id, status in (("20261101T000000-aaaaaa", "finished"), ("20261102T000000-bbbbbb", "running")):
        Journal(tmp_path, run_id).write_record(
            RunRecord(run_id, "/p/smoke.yaml", "x", "/i.yaml", ["h1", "h2"], {}, "2026-11-01T00:00:00+00:00", status)
        )
    result = CliRunner().invoke(cli, ["runs", "--state-dir", str(tmp_path)])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[1].startswith("20261102T000000-bbbbbb   running")
    assert lines[2].startswith("20261101T000000-aaaaaa   finished") and lines[2].endswith("smoke.yaml")
    missing = CliRunner().invoke(cli, ["run", "--resume", "20261103T000000-cccccc", "--state-dir", str(tmp_path)])
    assert (
        missing.exit_code == 2
        and "no run '20261103T000000-cccccc'" in missing.output
        and "ispagent runs" in missing.output
    )
    outside = tmp_path / "elsewhere"  # a run id names a directory under runs/: no other directory may be read
    Journal(outside, "20261101T000000-aaaaaa").write_record(
        RunRecord("x", "/p/smoke.yaml", "x", "/i.yaml", ["h1"], {}, "2026-11-01T00:00:00+00:00", "running")
    )
    traversal = CliRunner().invoke(
        cli, ["run", "--resume", "../../elsewhere/runs/20261101T000000-aaaaaa", "--state-dir", str(tmp_path)]
    )
    assert traversal.exit_code == 2 and traversal.output == (
        "ispagent: error: '../../elsewhere/runs/20261101T000000-aaaaaa' is not a run id (like 20261126T155417-8c50ad); "
        "list runs with: ispagent runs\n"
    )


def test_starts_are_not_waited_for_but_reach_the_file_in_order_before_the_next_end(tmp_path):
    from agent.runner.events import HostStarted, StepFinished, StepRecord, StepStarted
    from agent.runner.journal import Journal

    journal = Journal(tmp_path, "run-order")
    journal.open_events()
    journal(HostStarted("h1"))
    journal(StepStarted("h1", "shell"))
    assert journal._durable == 0  # written (`runs show` sees them), not waited for on disk
    assert [json.loads(line)["event"] for line in journal.events_path.read_text().splitlines()] == [
        "host_started",
        "step_started",
    ]
    journal(StepFinished("h1", StepRecord("shell", "ok", False, 0.1, "done")))
    assert journal._durable == 3
    kinds = [json.loads(line)["event"] for line in journal.events_path.read_text().splitlines()]
    assert kinds == ["host_started", "step_started", "step_finished"]
    journal(StepStarted("h1", "upload"))
    journal.close()
    assert json.loads(journal.events_path.read_text().splitlines()[-1])["event"] == "step_started"


def test_ends_safe_to_do_again_are_written_at_once_and_on_disk_with_the_next_durable_end(tmp_path, monkeypatch):
    from agent.runner.events import HostStarted, StepFinished, StepRecord

    journal = Journal(tmp_path, "run-ends")
    journal.open_events()
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    journal(HostStarted("h1"))
    journal(StepFinished("h1", StepRecord("upload", "changed", True, 0.1, ""), durable=False))
    journal(HostFinished(HostOutcome("h1", "1.1.1.1", "changed", (), None)))
    assert (len(fsyncs), journal._durable) == (0, 0)  # not waited for on disk
    assert len(journal.events_path.read_text().splitlines()) == 3  # but on the file: `runs show` sees them
    journal(HostStarted("h2"))
    journal(StepFinished("h2", StepRecord("shell", "changed", True, 0.1, "")))  # waited for: all on disk
    assert (len(fsyncs), journal._durable) == (1, 5)
    kinds = [json.loads(line)["event"] for line in journal.events_path.read_text().splitlines()]
    assert kinds == ["host_started", "step_finished", "host_finished", "host_started", "step_finished"]
    journal(StepFinished("h2", StepRecord("template", "ok", False, 0.1, ""), durable=False))
    journal.close()  # the run's end puts on disk what is not yet
    assert (len(fsyncs), journal._durable) == (2, 6)
    assert json.loads(journal.events_path.read_text().splitlines()[-1])["step"] == "template"


def test_a_line_queued_while_another_is_written_is_written_by_that_writer_when_it_is_done(tmp_path, monkeypatch):
    """`runs show` must see a host's start even when it came during another host's fsync."""
    import threading

    journal = Journal(tmp_path, "run-behind")
    journal.open_events()
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):
        in_fsync.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    writer = threading.Thread(target=journal, args=(StepFinished("h1", _step("shell", "changed")),))
    writer.start()
    assert in_fsync.wait(10)
    journal(HostStarted("h2"))  # a write is in progress: queued behind it, not waited for
    release.set()
    writer.join(10)
    kinds = [json.loads(line)["event"] for line in journal.events_path.read_text().splitlines()]
    assert kinds == ["step_finished", "host_started"] and journal._durable == 1
    journal.close()


def test_a_journal_watch_kills_right_after_the_nth_matching_event_is_durable(tmp_path):
    """The harness's kill point (the chaos tests' kill matrix): SIGKILL once the named event is on disk."""
    script = (
        "import sys; from pathlib import Path\n"
        "from agent.runner.journal import Journal\n"
        "from agent.runner.events import HostStarted, StepFinished, StepRecord\n"
        "from harness.crashrun import KillPoint\n"
        "j = Journal(Path(sys.argv[1]), 'r1', KillPoint.parse('step_finished:license@2')); j.open_events()\n"
        "for host in ('a', 'b', 'c'):\n"
        "    j(HostStarted(host)); j(StepFinished(host, StepRecord('license', 'changed', True, 0.1, '')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "runs/r1/events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["host"]) for e in lines] == [
        ("host_started", "a"),
        ("step_finished", "a"),
        ("host_started", "b"),
        ("step_finished", "b"),
    ]


class _FullDisk:
    """A journal file on a disk that just filled up: every write and flush fails with ENOSPC."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        raise OSError(28, "No space left on device")

    flush = write

    def fileno(self):
        return self.real.fileno()

    def close(self):
        self.real.close()
        raise OSError(28, "No space left on device")


def test_closing_a_journal_on_a_full_disk_is_the_one_line_state_dir_error_not_an_oserror(tmp_path):
    # Seen in harness/chaos_faults.py: the state dir's tmpfs filled up mid-run and the run ended in
    # an OSError traceback from close(), raised by the run's cleanup.
    from agent.errors import StateDirError

    journal = Journal(tmp_path, "r1")
    journal.open_events()
    journal(HostStarted("a"))  # queued, not yet written
    journal._events = _FullDisk(journal._events)
    with pytest.raises(StateDirError, match="cannot write .No space left on device."):
        journal.close()
    journal.close()  # closed once: a second close is nothing


def test_closing_a_journal_already_broken_by_a_full_disk_raises_nothing_more(tmp_path):
    from agent.errors import StateDirError

    journal = Journal(tmp_path, "r1")
    journal.open_events()
    journal._events = _FullDisk(journal._events)
    with pytest.raises(StateDirError):
        journal(StepFinished("a", _step("shell", "changed")))
    journal.close()  # the run already reports the full disk: its cleanup must not replace it with a traceback
