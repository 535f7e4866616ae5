"""The state dir is ours or refused: nothing planted in it (links, foreign records, FIFOs) steers a
write or a deletion outside it, and what is not a run journal is skipped and named in one line."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from click.testing import CliRunner
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.errors import StateDirError
from agent.runner.journal import InventoryLock, Journal, RunRecord, list_runs
from agent.runner.retention import prune_runs
from agent.transport.hostlog import HostLog

RUN = "20261101T020000-00abcd"
OTHER = "20261102T020000-00beef"


def record(run_id=RUN, **changes) -> dict:
    data = RunRecord(
        run_id, "/p.yaml", "x", "/i.yaml", ["web1"], {}, "2026-11-01T02:00:00+00:00", "finished", summary={"ok": 1}
    ).__dict__
    return {**data, **changes}


def plant(state_dir, name, data) -> None:
    directory = state_dir / "runs" / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps(data))


def victim(tmp_path):
    target = tmp_path / "victim"
    target.mkdir()
    (target / "precious").write_text("keep me")
    return target


def cli_run(*args):
    return CliRunner().invoke(cli, list(args))


def one_error_line(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.output
    return lines[0]


@pytest.mark.parametrize("planted_id", ["../../victim", "/absolute/victim", RUN + "/../../../victim"])
def test_prune_deletes_by_directory_name_never_by_the_run_id_inside(tmp_path, planted_id):
    state = tmp_path / "state"
    target = victim(tmp_path)
    state.mkdir(mode=0o700)
    plant(state, RUN, record(run_id=planted_id.replace("/absolute/victim", str(target))))
    result = prune_runs(state, keep=0)
    assert (target / "precious").read_text() == "keep me"
    assert result.removed == (RUN,) and not (state / "runs" / RUN).exists()


def test_a_symlinked_run_dir_is_skipped_named_and_its_target_kept(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "runs").mkdir()
    plant(tmp_path / "elsewhere-root", OTHER, record(OTHER))
    (state / "runs" / OTHER).symlink_to(tmp_path / "elsewhere-root" / "runs" / OTHER)
    (state / "runs" / "notes.txt").write_text("hi")
    result = cli_run("runs", "prune", "--keep", "0", "--state-dir", str(state))
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and OTHER in skipped[0] and "symbolic link" in skipped[0] and "notes.txt" in skipped[0]
    assert (tmp_path / "elsewhere-root" / "runs" / OTHER / "run.json").exists()


def test_a_copied_run_dir_is_pruned_without_a_traceback(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    plant(state, RUN, record())
    shutil.copytree(state / "runs" / RUN, state / "runs" / OTHER)  # its run.json still says RUN
    assert [r.run_id for r in list_runs(state)] == [OTHER, RUN]
    result = cli_run("runs", "prune", "--keep", "0", "--state-dir", str(state))
    assert result.exit_code == 0 and "removed 2 run(s)" in result.output, result.output
    assert list((state / "runs").iterdir()) == []


def test_the_inventory_lock_never_truncates_a_links_target(tmp_path):
    state = tmp_path / "state"
    lock = InventoryLock(state, "/i.yaml", "i.yaml", RUN)
    state.mkdir(mode=0o700)
    lock.path.parent.mkdir()
    target = tmp_path / "target"
    target.write_text("precious")
    lock.path.symlink_to(target)
    with pytest.raises(StateDirError, match="symbolic link"):
        lock.__enter__()
    assert target.read_text() == "precious"


@pytest.mark.parametrize("planted", ["events.jsonl", "hosts/web1.log"])
def test_resume_never_appends_through_a_planted_link(tmp_path, planted):
    state = tmp_path / "state"
    journal = Journal(state, RUN)
    journal.write_record(RunRecord(**record()))
    target = tmp_path / "target"
    target.write_text("precious")
    (journal.dir / planted).symlink_to(target)
    with pytest.raises(StateDirError, match="symbolic link"):
        journal.open_events()
        HostLog(journal.host_log_path("web1")).write("out", "host output")
    assert target.read_text() == "precious"


def test_a_fifo_in_the_journal_is_refused_not_waited_on(tmp_path, no_hang):
    state = tmp_path / "state"
    journal = Journal(state, RUN)
    journal.write_record(RunRecord(**record()))
    os.mkfifo(journal.events_path)
    with pytest.raises(StateDirError, match="FIFO|not a regular file"):
        journal.open_events()
    with pytest.raises(StateDirError, match="not a regular file"):
        journal.finished_work()


def test_a_run_dir_that_is_a_link_is_refused_when_resumed(tmp_path):
    state = tmp_path / "state"
    plant(tmp_path / "elsewhere", RUN, record())
    (state / "runs").mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    (state / "runs" / RUN).symlink_to(tmp_path / "elsewhere" / "runs" / RUN)
    with pytest.raises(StateDirError, match="symbolic link"):
        Journal(state, RUN).read_record()


def test_a_new_state_dir_is_made_0700(tmp_path):
    state = tmp_path / "a" / "state"
    Journal(state, RUN).write_record(RunRecord(**record()))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "runs" / RUN).stat().st_mode) == 0o700


def test_a_state_dir_others_can_write_is_refused_in_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    line = one_error_line(cli_run("runs", "--state-dir", str(state)))
    assert "can be written by group or others" in line and f"chmod go-w {state}" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_state_dir_owned_by_another_user_is_refused_in_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    line = one_error_line(cli_run("runs", "prune", "--keep", "1", "--state-dir", str(state)))
    assert "owned by uid 65534" in line and "chown" in line


def test_a_line_break_in_a_record_draws_no_row_of_its_own(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    plant(state, RUN, record(status="finished\n20991231T000000-ffffff  finished", playbook="/x\nfake.yaml"))
    result = cli_run("runs", "--state-dir", str(state))
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) == 2, result.output  # the header and one row


@pytest.mark.parametrize("bad", [[], {"run_id": RUN}, {**record(), "hosts": 5}, {**record(), "pid": "x"}])
def test_a_record_of_the_wrong_shape_is_skipped_and_named(tmp_path, bad):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    from agent.runner.journal import scan_runs

    plant(state, RUN, bad)
    listing = scan_runs(state)
    assert listing.records == [] and listing.skipped[0][0] == RUN
    result = cli_run("runs", "--state-dir", str(state))
    assert result.exit_code == 0 and "unreadable run.json" in result.output


def test_ensure_state_dir_refuses_a_file(tmp_path):
    from agent.statedir import ensure_state_dir

    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="not a directory"):
        ensure_state_dir(tmp_path / "file")


# --- mutations of a run record (issue 20, Build 8): what a crash, an editor or a planted file leaves


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(random=st.randoms(use_true_random=False), events=st.booleans())
def test_mutated_run_records_are_listed_pruned_or_skipped_in_one_line_touching_nothing_outside(
    tmp_path_factory, random, events
):
    root = tmp_path_factory.mktemp("mutated-state")
    state, target = root / "state", victim(root)
    state.mkdir(mode=0o700)
    plant(state, OTHER, record(OTHER))  # an intact neighbour
    original = mutations.originals("run-record")[1 if events else 0]  # events.jsonl or run.json
    damaged = mutations.mutated(random, original, "run-record", 256 * 1024)
    (state / "runs" / RUN).mkdir(parents=True)
    (state / "runs" / RUN / ("events.jsonl" if events else "run.json")).write_bytes(damaged)
    if events:
        (state / "runs" / RUN / "run.json").write_text(mutations.RUN_RECORD)
    outside = {path: path.stat().st_mtime_ns for path in root.rglob("*") if state not in path.parents and path != state}
    for args in (
        ["runs", "--state-dir", str(state)],
        ["runs", "--json", "--state-dir", str(state)],
        ["runs", "prune", "--keep", "0", "--include-resumable", "--state-dir", str(state)],
    ):
        result = cli_run(*args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
        assert "Traceback" not in result.output
        if result.exit_code:
            one_error_line(result)
        lines = result.output.splitlines()
        assert not any(line.startswith("20261101T020000-00beef") for line in lines), result.output  # no made-up row
        assert all(
            line.startswith(
                (
                    "RUN ID",
                    RUN,
                    OTHER,
                    "skipped",
                    "removed",
                    "kept",
                    "no runs",
                    "[",
                    "]",
                    " ",
                    "{",
                    "}",
                    "would",
                    "nothing",
                )
            )
            for line in lines
            if line
        ), result.output
    assert (target / "precious").read_text() == "keep me"
    assert {
        path: path.stat().st_mtime_ns for path in root.rglob("*") if state not in path.parents and path != state
    } == outside
    if events:  # what `run --resume` reads of a run: its record, then its events replayed
        (state / "runs" / RUN).mkdir(parents=True, exist_ok=True)
        (state / "runs" / RUN / "events.jsonl").write_bytes(damaged)
        (state / "runs" / RUN / "run.json").write_text(mutations.RUN_RECORD)
        journal = Journal(state, RUN)
        journal.read_record()
        journal.finished_work()  # a damaged event is skipped (its host runs again), never a traceback


def test_a_run_record_nested_past_the_recursion_limit_is_skipped_in_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    plant(state, OTHER, record(OTHER))
    (state / "runs" / RUN).mkdir()
    (state / "runs" / RUN / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    for args in (["runs"], ["runs", "prune", "--keep", "0"]):
        result = cli_run(*args, "--state-dir", str(state))
        assert result.exit_code == 0 and result.exception is None, (args, result.output, result.exception)
        skipped = [line for line in result.output.splitlines() if line.startswith("skipped")]
        assert len(skipped) == 1 and RUN in skipped[0] and "nested too deeply" in skipped[0], result.output


@pytest.mark.parametrize(
    "line",
    [
        "[]",
        '"text"',
        '{"event": "host_started", "host": ["web1"]}',
        '{"event": "step_finished", "host": "web1"}',
        '{"event": "host_finished", "host": {}}',
    ],
)
def test_a_damaged_event_is_replayed_as_not_done_never_a_traceback(tmp_path, line):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    plant(state, RUN, record())
    events = '{"event": "host_started", "host": "web1"}\n' + line + "\n"
    (state / "runs" / RUN / "events.jsonl").write_text(events)
    host_status, steps = Journal(state, RUN).finished_work()
    assert host_status == {} and steps == {"web1": {}}
