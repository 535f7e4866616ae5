"""The replay transport: what it records, how it answers, and how it fails a test that strays from its script."""

from __future__ import annotations

import inspect

import pytest

from agent.errors import CommandTimeout, HostUnreachable, TransportError
from agent.inventory.model import Endpoint, Host
from agent.secrets import register_secret
from agent.transport.base import Connection
from agent.transport.hostlog import HostLog
from agent.transport.replay import ExpectedCommand, ExpectedUpload, ReplayConnection, ScriptMismatch
from agent.transport.ssh import SshConnection

HOST = Host("h1", Endpoint("198.18.0.2"))
SUDO_HOST = Host("h2", Endpoint("198.18.0.3", user="deploy"), sudo=True)


@pytest.mark.parametrize("name", ["run", "put", "close"])
def test_steps_see_the_same_methods_as_on_an_ssh_connection(name):
    assert inspect.signature(getattr(ReplayConnection, name)) == inspect.signature(getattr(Connection, name))
    assert inspect.signature(getattr(SshConnection, name)) == inspect.signature(getattr(Connection, name))


def test_the_replay_connection_is_a_connection():
    assert isinstance(ReplayConnection(HOST), Connection)


def test_argv_is_quoted_and_a_sudo_host_wraps_it_like_ssh_does():
    connection = ReplayConnection(
        SUDO_HOST,
        [
            ExpectedCommand("sudo -n -- sh -c 'cat '\"'\"'/etc/my file'\"'\"''", stdout="x\n"),
            ExpectedCommand(command="id -un", stdout="deploy\n"),
        ],
    )
    assert connection.run(["cat", "/etc/my file"]).stdout == "x\n"
    assert connection.run("id -un", sudo=False).stdout == "deploy\n"
    connection.assert_done()
    assert connection.commands == ["sudo -n -- sh -c 'cat '\"'\"'/etc/my file'\"'\"''", "id -un"]


def test_answers_come_by_exact_line_regex_or_substring_in_order():
    connection = ReplayConnection(
        HOST,
        [
            ExpectedCommand(match=r"^stat .*\nsha256sum", stdout="644\n"),
            ExpectedCommand(contains="restart nginx", stderr="failed\n", exit_status=1),
        ],
    )
    assert connection.run("stat -c %a /etc/motd\nsha256sum /etc/motd").stdout == "644\n"
    result = connection.run("systemctl restart nginx")
    assert (result.ok, result.error_line()) == (False, "failed")
    connection.assert_done()


def test_an_unexpected_command_fails_listing_what_was_expected():
    connection = ReplayConnection(HOST, [ExpectedCommand("uname -s"), ExpectedCommand(contains="hostname")])
    with pytest.raises(ScriptMismatch) as error:
        connection.run("reboot")
    message = str(error.value)
    assert "unexpected command #1 on h1: 'reboot'" in message
    assert "1. command 'uname -s'" in message and "2. command containing 'hostname'" in message
    assert "+reboot" in message  # a diff against the exact line expected


def test_a_swallowed_mismatch_still_fails_at_the_end():
    connection = ReplayConnection(HOST, [ExpectedCommand("uname -s")])
    try:
        connection.run("rm -rf /srv")
    except AssertionError:
        pass  # a step with a broad except would hide it
    with pytest.raises(ScriptMismatch, match="unexpected command #1 on h1: 'rm -rf /srv'"):
        connection.assert_done()


def test_expected_work_left_undone_fails_at_the_end():
    connection = ReplayConnection(HOST, [ExpectedCommand("uname -s"), ExpectedUpload("/etc/motd")])
    connection.run("uname -s")
    with pytest.raises(ScriptMismatch, match="expected but never sent:\n  1. upload to /etc/motd"):
        connection.assert_done()


def test_uploads_are_recorded_and_checked_against_the_script():
    connection = ReplayConnection(HOST, [ExpectedUpload("/etc/motd", 0o644, b"hello\n", make_parents=False)])
    connection.put(b"hello\n", "/etc/motd")
    assert [(u.dest, u.mode, u.text) for u in connection.uploads] == [("/etc/motd", 0o644, "hello\n")]
    connection.assert_done()
    wrong_mode = ReplayConnection(HOST, [ExpectedUpload("/etc/motd", mode=0o600)])
    with pytest.raises(ScriptMismatch, match="mode 644, expected 600"):
        wrong_mode.put(b"hello\n", "/etc/motd")


def test_failures_the_script_asks_for_are_the_transports_own_errors():
    connection = ReplayConnection(
        HOST,
        [
            ExpectedCommand("sleep 999", failure="timeout"),
            ExpectedCommand("true", failure="connection_lost"),
            ExpectedUpload("/etc/motd", error="No space left on device"),
        ],
    )
    with pytest.raises(CommandTimeout):
        connection.run("sleep 999")
    with pytest.raises(HostUnreachable, match="h1: connection lost"):
        connection.run("true")
    with pytest.raises(TransportError, match="upload to /etc/motd failed: No space left on device"):
        connection.put(b"x", "/etc/motd")
    connection.assert_done()


def test_testinfra_runs_over_the_replayed_connection():
    from agent.transport.testinfra_host import testinfra_host

    connection = ReplayConnection(HOST, [ExpectedCommand("test -e /etc/motd", exit_status=1)])
    assert testinfra_host(connection).run("test -e /etc/motd").rc == 1
    connection.assert_done()


def test_the_host_log_gets_masked_lines_as_from_ssh(tmp_path):
    register_secret("replay-secret-7f3a")
    log = HostLog(tmp_path / "h1.log")
    connection = ReplayConnection(
        HOST, [ExpectedCommand("echo replay-secret-7f3a", stdout="replay-secret-7f3a\n")], log
    )
    result = connection.run("echo replay-secret-7f3a")
    log.close()
    text = (tmp_path / "h1.log").read_text()
    assert "replay-secret-7f3a" not in text and "$ echo ***" in text and "= exit 0" in text
    assert result.command == "echo ***" and result.stdout == "replay-secret-7f3a\n"
