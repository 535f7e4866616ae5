"""Outputs (reports, metrics) go only to regular files, atomically; their modes honour the umask.

A FIFO at the metrics path once hung a run for ever while it held the inventory lock, and a link to
/dev/zero read until MemoryError; reports and run.json were forced to 0644 under umask 077.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_mask_values import result

from agent.runner.metrics import previous_last_success, write_metrics
from agent.runner.report import write_report

REPO = Path(__file__).resolve().parents[2]


def test_the_previous_metrics_file_is_read_like_every_input(tmp_path, no_hang):
    fifo = tmp_path / "m.prom"
    os.mkfifo(fifo)
    assert previous_last_success(fifo) is None
    zero = tmp_path / "zero.prom"
    zero.symlink_to("/dev/zero")
    # In a child with 1 GiB of address space: a reader without a size cap fails there, not on this machine.
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)); "
        "from pathlib import Path; from agent.runner.metrics import previous_last_success; "
        "print(previous_last_success(Path(sys.argv[1])))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(zero)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "None\n", done.stderr[-300:]
    big = tmp_path / "big.prom"
    big.write_text("# x\n" * 400_000)
    assert previous_last_success(big) is None


@pytest.mark.parametrize("kind", ["fifo", "device", "link"])
def test_a_run_with_an_output_at_a_fifo_device_or_link_is_refused_before_it_starts(tmp_path, kind):
    path = tmp_path / "m.prom"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/null" if kind == "device" else tmp_path / "real.prom")
    state = tmp_path / "state"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            str(REPO / "playbooks" / "reprovision.yaml"),
            "-i",
            str(REPO / "inventory.example.yaml"),
            "--metrics-file",
            str(path),
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "--metrics-file" in done.stderr and ("FIFO" in done.stderr or "symbolic link" in done.stderr)
    assert not state.exists()  # refused before any lock or journal
    assert path.is_symlink() or stat.S_ISFIFO(path.lstat().st_mode)


def test_write_metrics_never_writes_through_a_fifo(tmp_path, no_hang):
    from agent.errors import InputError

    fifo = tmp_path / "m.prom"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        write_metrics(fifo, None, exit_code=2)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_reports_and_run_records_honour_the_umask(tmp_path):
    from agent.runner.journal import Journal, RunRecord

    previous = os.umask(0o077)
    try:
        write_report(tmp_path / "r.json", result("ok"))
        journal = Journal(tmp_path / "state", "20261206T010203-a1b2c3")
        journal.write_record(RunRecord("20261206T010203-a1b2c3", "/p", "x", "/i", [], {}, "2026-12-06T01:02:03"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((journal.dir / "run.json").stat().st_mode) == 0o600
    write_report(tmp_path / "r2.json", result("ok"))
    assert stat.S_IMODE((tmp_path / "r2.json").stat().st_mode) == 0o666 & ~previous
