"""The command ends without the interpreter's teardown, but with everything the teardown would have
done that anyone could see: exit code, flushed output, atexit handlers, threads still working."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path)},
    )


def test_exit_code_threads_atexit_handlers_and_buffered_output_all_survive(tmp_path):
    done = _python(
        """
        import atexit, os, sys, threading, time
        from pathlib import Path
        from agent.cli.main import exit_without_teardown
        out = Path(os.environ["OUT"])
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        def late_writer():
            time.sleep(0.3)
            (out / "thread").write_text("finished")
        threading.Thread(target=late_writer).start()
        sys.stdout.write("buffered, no newline")
        exit_without_teardown(3)
        (out / "after").write_text("must not run")
    """,
        tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "finished"
    assert not (tmp_path / "after").exists()


def test_a_message_as_exit_code_is_printed_masked_and_exits_1(tmp_path):
    done = _python(
        """
        from agent.cli.main import exit_without_teardown
        exit_without_teardown("gone: https://user:s3cret-pw@example.net/x")
    """,
        tmp_path,
    )
    assert done.returncode == 1
    assert "s3cret-pw" not in done.stderr and "gone: https://user:***@example.net/x" in done.stderr


def test_the_command_prints_and_exits_as_with_the_interpreters_own_exit(tmp_path):
    ispagent = Path(sys.executable).parent / "ispagent"
    with_teardown = [sys.executable, "-c", "from agent.cli.main import cli; cli(prog_name='ispagent')"]
    for argv, code in (
        (["--help"], 0),
        (["run", str(tmp_path / "missing.yaml"), "-i", str(tmp_path / "none.yaml")], 2),
    ):
        ours = subprocess.run([str(ispagent), *argv], capture_output=True, text=True, timeout=60)
        plain = subprocess.run([*with_teardown, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert (ours.returncode, ours.stdout, ours.stderr) == (code, plain.stdout, plain.stderr)
    assert "no such playbook" in ours.stderr
