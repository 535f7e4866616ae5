"""The one command that checks and writes a file (agent/stepkit/hostfiles.py), run by a real `sh`
on real files here: what it leaves behind, and that a second run changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.errors import TransportError
from agent.inventory.model import Endpoint, Host
from agent.runner.context import HostContext
from agent.stepkit.hostfiles import ensure_file
from agent.transport.base import CommandResult
from agent.transport.filewrite import put_script, store_data
from agent.transport.hostlog import HostLog
from agent.transport.hostshell import command_output, command_script


class LocalShell:
    """Runs each command line as the host shell does (hostshell.py's script, read by this machine's
    /bin/sh), its stdin or data given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def run(self, command, *, sudo=None, timeout=None, stdin=None, data=None, log_output=True) -> CommandResult:
        self.lines.append(command)
        script = command_script(TOKEN, command, stdin, data)
        done = subprocess.run(["sh", "-s"], input=script, capture_output=True, timeout=30)
        status, out, err = command_output(TOKEN, done.stdout, done.stderr)
        return CommandResult(command, status, out.decode(), err.decode())


TOKEN = "0123456789abcdef0123456789abcdef"


def _context(shell: LocalShell) -> HostContext:
    host = Host("h1", Endpoint("127.0.0.1", 22, "root"))
    return HostContext(host, shell, False, [], Path("."), HostLog(None), None, None)


def _ensure(shell, dest: Path, content: bytes, mode: int):
    return ensure_file(_context(shell), str(dest), content, mode)


def test_a_new_file_is_written_in_one_command_and_a_second_run_changes_nothing(tmp_path):
    shell, dest = LocalShell(), tmp_path / "etc" / "motd"
    first = _ensure(shell, dest, b"hello\n", 0o640)
    inode = dest.stat().st_ino
    second = _ensure(shell, dest, b"hello\n", 0o640)
    assert (first.status, first.message) == ("changed", f"{dest} created with {dest.parent}")
    assert (second.status, second.message) == ("ok", f"{dest} up to date")
    assert dest.read_bytes() == b"hello\n" and oct(dest.stat().st_mode & 0o7777) == "0o640"
    assert dest.stat().st_ino == inode  # not rewritten
    assert len(shell.lines) == 2 and os.listdir(dest.parent) == ["motd"]


def test_new_content_replaces_the_file_by_rename_and_a_wrong_mode_is_only_chmodded(tmp_path):
    shell, dest = LocalShell(), tmp_path / "motd"
    dest.write_bytes(b"old\n")
    dest.chmod(0o644)
    inode = dest.stat().st_ino
    replaced = _ensure(shell, dest, b"new\n", 0o644)
    assert (replaced.status, replaced.message) == ("changed", f"{dest} content")
    assert dest.read_bytes() == b"new\n" and dest.stat().st_ino != inode
    inode = dest.stat().st_ino
    chmodded = _ensure(shell, dest, b"new\n", 0o600)
    assert (chmodded.status, chmodded.message) == ("changed", f"{dest} mode 644 -> 600")
    assert dest.stat().st_ino == inode and oct(dest.stat().st_mode & 0o7777) == "0o600"
    assert os.listdir(tmp_path) == ["motd"]


def test_names_with_a_backslash_a_line_break_and_spaces_are_up_to_date_on_the_second_run(tmp_path):
    shell, dest = LocalShell(), tmp_path / "a b\\c\nd"
    assert _ensure(shell, dest, b"x", 0o644).status == "changed"
    assert _ensure(shell, dest, b"x", 0o644).status == "ok"
    assert dest.read_bytes() == b"x"


def test_a_directory_in_the_way_fails_the_upload_and_is_left_alone(tmp_path):
    shell, dest = LocalShell(), tmp_path / "conf"
    (dest / "inside").mkdir(parents=True)
    with pytest.raises(TransportError, match=f"upload to {dest} failed"):
        _ensure(shell, dest, b"data\n", 0o644)
    assert os.listdir(dest) == ["inside"] and os.listdir(tmp_path) == ["conf"]


@pytest.mark.parametrize("mode", [0o640, 0o750, 0o2755, 0o400])
def test_the_file_gets_exactly_its_mode_whatever_the_hosts_umask_and_is_never_more_readable_while_written(
    tmp_path, mode
):
    shell, dest = LocalShell(), tmp_path / "f"
    old = os.umask(0)  # the host's shell: a umask that would leave a plain `cat >` file 0666
    try:
        assert _ensure(shell, dest, b"data\n", mode).status == "changed"
    finally:
        os.umask(old)
    assert oct(dest.stat().st_mode & 0o7777) == oct(mode)
    assert "umask 077 && set -C && exec 3>" in shell.lines[0]  # created 0600, then given its mode


def test_a_staging_name_taken_by_a_planted_symlink_fails_the_upload_and_is_not_followed(tmp_path, monkeypatch):
    from agent.stepkit import hostfiles

    shell, dest, target = LocalShell(), tmp_path / "motd", tmp_path / "victim"
    target.write_bytes(b"keep\n")
    target.chmod(0o600)
    (tmp_path / "motd.ispagent-fixed").symlink_to(target)
    monkeypatch.setattr(hostfiles, "staging_path", lambda path: f"{path}.ispagent-fixed")
    with pytest.raises(TransportError, match=f"upload to {dest} failed: .*exists"):
        _ensure(shell, dest, b"data\n", 0o644)
    assert target.read_bytes() == b"keep\n" and oct(target.stat().st_mode & 0o7777) == "0o600"
    assert not dest.exists()


def test_a_staging_name_planted_as_a_link_to_a_device_gets_no_byte_and_fails_the_upload(tmp_path, monkeypatch):
    """The shell's noclobber (`set -C`) opens what is not a regular file; the words refuse it before writing."""
    from agent.stepkit import hostfiles

    device = tmp_path / "device"
    os.mkfifo(device)  # a reader kept open, so that opening it to write does not block
    reader = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        shell, dest = LocalShell(), tmp_path / "motd"
        (tmp_path / "motd.ispagent-fixed").symlink_to(device)
        monkeypatch.setattr(hostfiles, "staging_path", lambda path: f"{path}.ispagent-fixed")
        with pytest.raises(TransportError, match="not a new regular file"):
            _ensure(shell, dest, b"data\n", 0o644)
        assert os.read(reader, 100) == b""  # its writer came and went without a byte
    finally:
        os.close(reader)
    assert not dest.exists()


def test_the_mode_goes_to_the_file_written_not_to_one_swapped_in_at_its_name(tmp_path):
    """Someone who can write the directory renames the staging file away while it fills, and puts
    a link to another file at its name: `chmod` through the descriptor still reaches the file written."""
    victim, staging = tmp_path / "victim", tmp_path / "f.ispagent-1"
    victim.write_bytes(b"secret\n")
    victim.chmod(0o600)
    swap = f"mv {staging} {tmp_path}/moved; ln -s {victim} {staging}; printf data"
    words = f"ispagent_data() {{ {swap}; }}; {store_data(str(staging), 0o644)}"
    done = subprocess.run(["sh", "-c", words], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert oct(victim.stat().st_mode & 0o7777) == "0o600" and victim.read_bytes() == b"secret\n"
    moved = tmp_path / "moved"
    assert moved.read_bytes() == b"data" and oct(moved.stat().st_mode & 0o7777) == "0o644"


@pytest.mark.parametrize("shell", [shell for shell in ("dash", "bash") if shutil.which(shell)])
@pytest.mark.parametrize("mode", [0o640, 0o4755, 0o600])
def test_a_put_writes_exact_bytes_and_mode_under_dash_and_bash_as_the_hosts_sh(tmp_path, shell, mode):
    """bash is /bin/sh on the RHEL family: the same words must hold there (noclobber, fd 3, /proc)."""
    dest, data = tmp_path / "my dir" / "f", b"\0\x01hello\n'%\\" * 10
    script = command_script(TOKEN, put_script(str(dest), mode, make_parents=True), None, data)
    done = subprocess.run([shell, "-s"], input=script, capture_output=True, timeout=30)
    assert command_output(TOKEN, done.stdout, done.stderr) == (0, b"", b"")
    assert dest.read_bytes() == data and oct(dest.stat().st_mode & 0o7777) == oct(mode)
    assert os.listdir(dest.parent) == ["f"]
