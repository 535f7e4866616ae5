"""A connection's commands share one long-lived /bin/sh on the host, each in a subshell of its own."""

from __future__ import annotations

import hashlib
import os

import pytest

from agent.errors import CommandTimeout
from agent.inventory.model import Endpoint, Host, SshSettings
from agent.transport import SshConnector
from agent.transport.hostshell import STDIN_LIMIT

pytestmark = pytest.mark.lab


@pytest.fixture
def connection(lab):
    lab_host = lab.hosts[1]
    host = Host(name=lab_host.name, endpoint=Endpoint(lab_host.address, 22, "root", lab.identity_file))
    opened = SshConnector(SshSettings(known_hosts=lab.known_hosts_path)).connect(host)
    yield opened
    opened.close()


def test_a_connections_commands_run_in_one_shell(connection):
    shells = {connection.run("echo $$").stdout for _ in range(5)}
    assert len(shells) == 1


def test_what_a_command_changes_in_its_shell_ends_with_it(connection):
    home = connection.run("pwd").stdout
    result = connection.run("cd /tmp && umask 077 && LEFT=behind && export LEFT && exit 4")
    assert result.exit_status == 4
    after = connection.run('pwd; umask; echo "${LEFT-unset}"').stdout.splitlines()
    assert after == [home.strip(), "0022", "unset"]


def test_a_syntax_error_fails_only_its_own_command(connection):
    broken = connection.run("if then fi (")
    assert broken.exit_status == 2 and "Syntax error" in broken.stderr
    assert connection.run("echo fine").stdout == "fine\n"


@pytest.mark.parametrize("written", ["no newline", "two\n\n", "", "\n"])
def test_output_comes_back_byte_for_byte_and_streams_apart(connection, written):
    result = connection.run(["sh", "-c", 'printf %s "$1"; printf %s "$1" >&2; exit 7', "-", written])
    assert (result.exit_status, result.stdout, result.stderr) == (7, written, written)


@pytest.mark.parametrize("size", [0, 1, 256, STDIN_LIMIT, STDIN_LIMIT + 1, 3 * STDIN_LIMIT])
def test_stdin_bytes_reach_the_command_exactly(connection, size):
    data = (bytes(range(256)) * (size // 256 + 1))[:size] if size <= 256 else os.urandom(size)
    result = connection.run("sha256sum", stdin=data)
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_megabytes_of_output_come_back_whole(connection):
    result = connection.run("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2")
    assert (len(result.stdout), set(result.stdout[:-1]), result.stderr) == (3000001, {"x"}, "done\n")


def test_a_command_without_stdin_reads_end_of_file_not_the_next_command(connection):
    assert connection.run("cat; echo read-all").stdout == "read-all\n"
    assert connection.run("echo next").stdout == "next\n"


def test_a_command_that_reads_part_of_its_stdin_leaves_the_shell_in_step(connection):
    assert connection.run("head -c 3", stdin=b"abc" * 40000).stdout == "abc"
    assert connection.run("head -c 3", stdin=b"xyz" * 100).stdout == "xyz"
    assert connection.run("echo next").stdout == "next\n"


def test_after_a_timeout_the_next_command_gets_a_new_shell(connection):
    before = connection.run("echo $$").stdout
    with pytest.raises(CommandTimeout, match="sleep 5"):
        connection.run("sleep 5", timeout=0.5)
    after = connection.run("echo $$").stdout
    assert after.strip().isdigit() and after != before


def test_the_bytes_given_to_a_command_never_show_in_the_hosts_process_list(connection):
    # The pattern matches the bytes but not itself, so only a process carrying them would count.
    seen = connection.run("ps -eo args | grep -c 's3cret-[p]ayload'; cat >/dev/null", stdin=b"s3cret-payload\n" * 50)
    assert seen.stdout.strip() == "0"
