"""The runner never loses a host: whatever escapes a host's work fails that host, and the run says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.runner import run as runner
from agent.runner.run import RunOptions, RunPlan, start_run
from agent.transport.replay import ExpectedCommand, ReplayConnection


class _Factory:
    """A connector of replayed hosts, with faults by host name."""

    def __init__(
        self, connect_fault: dict[str, Exception] | None = None, close_fault: dict[str, Exception] | None = None
    ):
        self.connect_fault = connect_fault or {}
        self.close_fault = close_fault or {}

    def connect(self, host, log) -> ReplayConnection:
        if host.name in self.connect_fault:
            raise self.connect_fault[host.name]
        connection = ReplayConnection(host, [ExpectedCommand("echo hi", stdout="hi\n")], log)
        if host.name in self.close_fault:
            fault = self.close_fault[host.name]

            def close() -> None:
                raise fault

            connection.close = close
        return connection

    def close(self) -> None:
        pass


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(yaml.safe_dump({"name": "t", "steps": [{"shell": {"command": "echo hi"}}]}))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "ssh": {"known_hosts": str(tmp_path / "known_hosts")},
                "hosts": {"h1": {"address": "127.0.0.1", "port": 2201}, "h2": {"address": "127.0.0.1", "port": 2202}},
            }
        )
    )
    return playbook, inventory


def _run(files, tmp_path, monkeypatch, factory: _Factory):
    plan = RunPlan.from_files(*files, RunOptions(state_dir=tmp_path / "state"))
    return start_run(plan, listener=lambda event: None, connector=factory)


def test_an_error_escaping_a_hosts_work_fails_that_host_and_the_run(files, tmp_path, monkeypatch):
    result = _run(files, tmp_path, monkeypatch, _Factory(connect_fault={"h2": RuntimeError("bug in the transport")}))
    statuses = {host.name: (host.status, host.error) for host in result.hosts}
    assert statuses == {
        "h1": ("changed", None),
        "h2": ("failed", "internal error: RuntimeError: bug in the transport (traceback in the host log)"),
    }
    assert result.exit_code == 1
    log = (tmp_path / "state" / "runs" / result.run_id / "hosts" / "h2.log").read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: bug in the transport" in log


def test_a_failed_goodbye_does_not_lose_a_finished_host(files, tmp_path, monkeypatch):
    result = _run(files, tmp_path, monkeypatch, _Factory(close_fault={"h1": EOFError("socket gone")}))
    assert [(host.name, host.status) for host in result.hosts] == [("h1", "changed"), ("h2", "changed")]
    assert result.exit_code == 0
    log = (tmp_path / "state" / "runs" / result.run_id / "hosts" / "h1.log").read_text()
    assert "closing the connection failed: EOFError: socket gone" in log


def test_a_finished_run_with_a_host_not_run_does_not_exit_0():
    result = runner.RunResult(
        "r",
        "p",
        "i",
        "now",
        False,
        hosts=[
            runner.HostOutcome("h1", "127.0.0.1", "changed", (), None),
            runner.HostOutcome("h2", "127.0.0.2", "skipped", (), None),
        ],
    )
    assert result.status == "finished" and result.exit_code == 1


@pytest.mark.parametrize("fsyncs_before_full", [0, 1, 3])
def test_a_state_dir_that_fills_up_stops_the_run_with_one_reason_and_no_thread_traceback(
    files, tmp_path, monkeypatch, capsys, fsyncs_before_full
):
    import errno

    from agent.errors import StateDirError
    from agent.runner import journal as journal_module

    real_fsync, calls = journal_module.os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > fsyncs_before_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    with pytest.raises(StateDirError, match="cannot write .No space left on device."):
        _run(files, tmp_path, monkeypatch, _Factory())
    assert "Traceback" not in capsys.readouterr().err


def test_a_state_dir_that_cannot_be_made_is_one_line_and_exit_1(files, tmp_path):
    import subprocess
    import sys

    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state dir should be\n")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(files[0]), "-i", str(files[1])],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "ISPAGENT_STATE_DIR": str(not_a_dir)},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "cannot write" in done.stderr


def test_a_host_log_that_cannot_be_written_fails_each_host_with_one_reason_and_no_thread_traceback(
    files, tmp_path, monkeypatch, capsys
):
    # Seen with the state dir on a full tmpfs (harness/chaos_faults.py): the journal refused an event,
    # the host was taken for an internal error, and writing its traceback to the (full) host log
    # killed the worker thread with an OSError traceback on stderr.
    import errno
    import re

    from agent.transport import hostlog

    class FullFile:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = write

        def close(self):
            pass

    real_open = open
    monkeypatch.setattr(
        hostlog,
        "open",
        lambda path, *a, **k: FullFile() if str(path).endswith(".log") else real_open(path, *a, **k),
        raising=False,
    )
    result = _run(files, tmp_path, monkeypatch, _Factory())
    assert result.exit_code == 1
    for host in result.hosts:
        assert host.status == "failed"
        assert re.fullmatch(
            rf"shell: host log \S+/{host.name}\.log: cannot write \(No space left on device\): free "
            r"space or fix it, then finish with `ispagent run --resume RUN_ID`",
            host.error,
        ), host.error
    assert "Traceback" not in capsys.readouterr().err
