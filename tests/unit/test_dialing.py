"""A run's first hosts are dialed before paramiko is imported (agent/transport/dialing.py): the
handshake takes the dialed socket, a failed dial reports what a connect of its own would, and
nothing is dialed that would have to be looked up or is reached through something else."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from agent.errors import HostUnreachable
from agent.inventory.model import Endpoint, SshSettings
from agent.transport import dialing, ssh


@pytest.fixture
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def endpoint_of(server: socket.socket, **fields) -> Endpoint:
    return Endpoint("127.0.0.1", server.getsockname()[1], **{"user": "root", **fields})


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def test_the_dialed_socket_is_connected_blocking_and_without_nagle(listener):
    endpoint = endpoint_of(listener)
    dialed = dialing.DialedSockets([endpoint])
    assert len(dialed) == 1
    accepted, _ = listener.accept()  # the connection exists before anyone takes it
    sock = dialed.take(endpoint, 5)
    assert sock is not None and sock.gettimeout() == 5
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    sock.sendall(b"SSH-2.0-test\r\n")
    assert accepted.recv(100) == b"SSH-2.0-test\r\n"
    assert dialed.take(endpoint, 5) is None  # taken once
    sock.close()
    accepted.close()


def accepted_within(server: socket.socket, seconds: float) -> socket.socket | None:
    server.settimeout(seconds)
    try:
        return server.accept()[0]
    except TimeoutError:
        return None


@pytest.fixture
def listeners():
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(5)]
    yield servers
    for server in servers:
        server.close()


def test_dials_ahead_wait_for_answers_until_a_handshake_begins(listeners, monkeypatch):
    """Two in flight: the third host is dialed once the first answers (its banner), not before; the
    first handshake to begin has every other host dialed at once."""
    monkeypatch.setattr(dialing, "ANSWER_WAIT_S", 30)  # no host is dialed for want of an answer here
    endpoints = [endpoint_of(server) for server in listeners]
    dialed = dialing.DialedSockets(endpoints, in_flight=2)
    first, second = accepted_within(listeners[0], 5), accepted_within(listeners[1], 5)
    assert first and second
    assert accepted_within(listeners[2], 0.3) is None  # two dials unanswered: no third yet
    first.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    third = accepted_within(listeners[2], 5)
    assert third and accepted_within(listeners[3], 0.3) is None
    sock = dialed.take(endpoints[0], 5)
    assert sock is not None and sock.recv(100).startswith(b"SSH-2.0-")
    rest = [accepted_within(server, 5) for server in listeners[3:]]
    assert all(rest)
    assert len(dialed) == 4  # dialed and not taken yet
    for connection in (first, second, third, *rest, sock):
        connection.close()
    dialed.close()


def test_a_dial_left_unanswered_lets_the_next_one_go_after_a_moment(listeners, monkeypatch):
    """A host that accepts and says nothing (or drops SYNs) holds up the dials behind it only briefly."""
    monkeypatch.setattr(dialing, "ANSWER_WAIT_S", 0.2)
    dialed = dialing.DialedSockets([endpoint_of(server) for server in listeners[:2]], in_flight=1)
    began = time.monotonic()
    silent, next_one = accepted_within(listeners[0], 5), accepted_within(listeners[1], 5)
    assert silent and next_one
    assert 0.15 < time.monotonic() - began < 3
    silent.close()
    next_one.close()
    dialed.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"via": Endpoint("127.0.0.2", 22, "root", None)},
        {"proxy_command": "nc 127.0.0.1 22"},
    ],
    ids=["behind a bastion", "over a ProxyCommand"],
)
def test_a_host_not_reached_by_tcp_from_here_is_not_dialed(listener, fields):
    endpoint = endpoint_of(listener, **fields)
    dialed = dialing.DialedSockets([endpoint])
    assert len(dialed) == 0 and dialed.take(endpoint, 1) is None


def test_a_dialed_socket_above_descriptor_1024_is_taken(listener, descriptors_above_1024):
    """select() refuses descriptors above 1024; a run with a large --forks, or a program embedding
    ispagent, holds that many."""
    endpoint = endpoint_of(listener)
    sock = dialing.DialedSockets([endpoint]).take(endpoint, 5)
    assert sock is not None and sock.fileno() > 1024
    sock.close()


def test_a_name_is_not_looked_up_nor_dialed(monkeypatch):
    looked_up = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append((host, kwargs.get("flags", 0) & socket.AI_NUMERICHOST))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    dialed = dialing.DialedSockets([Endpoint("localhost", 22, "root", None)])
    assert len(dialed) == 0
    assert looked_up == [("localhost", socket.AI_NUMERICHOST)]  # refused as a name, never resolved


def test_one_socket_per_address_and_port(listener):
    endpoint = endpoint_of(listener)
    assert len(dialing.DialedSockets([endpoint, endpoint_of(listener, user="other")])) == 1


def test_a_refused_dial_raises_what_a_connect_raises():
    endpoint = Endpoint("127.0.0.1", closed_port(), "root", None)
    with pytest.raises(ConnectionRefusedError) as dialed_error:
        dialing.DialedSockets([endpoint]).take(endpoint, 5)
    with pytest.raises(ConnectionRefusedError) as own_error:
        socket.create_connection((endpoint.address, endpoint.port), timeout=5)
    assert str(dialed_error.value) == str(own_error.value)


def test_a_dial_not_answered_in_time_times_out():
    # A listening socket whose backlog is full drops further SYNs: the connect stays under way.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    endpoint = endpoint_of(server)
    fillers = []
    try:
        for _ in range(8):  # enough to fill any backlog the kernel rounds 0 up to
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", endpoint.port))
            fillers.append(filler)
        dialed = dialing.DialedSockets([endpoint])
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            dialed.take(endpoint, 0.3)
        assert 0.25 < time.monotonic() - began < 3
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_sockets_nobody_took_are_closed_with_the_connector(listener, tmp_path):
    endpoint = endpoint_of(listener)
    connector = ssh.SshConnector(
        SshSettings(known_hosts=tmp_path / "known_hosts"), dialed=dialing.DialedSockets([endpoint])
    )
    accepted, _ = listener.accept()
    connector.close()
    accepted.settimeout(5)
    assert accepted.recv(100) == b""  # the server sees the connection end
    accepted.close()


def test_a_refused_dial_is_the_first_of_the_connect_attempts(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "RETRY_BASE_DELAY", 0.001)
    endpoint = Endpoint("127.0.0.1", closed_port(), "root", None)
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", connect_timeout=5)
    reported = []
    for dialed in (dialing.DialedSockets([endpoint]), None):
        with pytest.raises(HostUnreachable) as raised:
            ssh.SshConnector(settings, dialed=dialed).open_connection(endpoint)
        reported.append(str(raised.value))
    assert reported[0] == reported[1]
    assert reported[0].startswith(f"cannot connect to {endpoint}: ") and reported[0].endswith("(3 attempts)")


def test_the_run_path_imports_no_paramiko_before_it_dials():
    """What lets the dial overlap paramiko's import: the runner, the plan and the transport's
    protocols load without it (agent/transport/__init__.py loads the SSH names on first use)."""
    probe = (
        "import sys\n"
        "import agent.cli.run_cmd, agent.cli.run_output, agent.runner.run, agent.runner.plan, agent.transport\n"
        "from agent.transport import HostLog, Connection\n"
        "assert 'paramiko' not in sys.modules, 'paramiko imported'\n"
        "from agent.transport import SshConnector\n"
        "assert 'paramiko' in sys.modules and SshConnector.__module__ == 'agent.transport.ssh'\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_reading_a_playbook_of_built_in_steps_imports_neither_jinja2_nor_package_metadata(tmp_path):
    """Both are 20 ms of CPU that would come before the run dials: jinja2 is imported at the first
    render, package metadata only to look for a step that is not built in."""
    playbook = tmp_path / "p.yaml"
    (tmp_path / "t.j2").write_text("x = {{ x }}\n")
    playbook.write_text("name: p\nsteps:\n  - template: {src: t.j2, dest: /etc/t}\n  - configure: {}\n  - verify: {}\n")
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from agent.runner.playbook import load_playbook\n"
        f"assert [s.type.name for s in load_playbook(Path({str(playbook)!r})).steps] == ['template', 'configure', 'verify']\n"
        "print(sorted(name for name in ('jinja2', 'importlib.metadata') if name in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_a_connector_that_cannot_be_made_leaves_no_dialed_socket_open(listener, tmp_path):
    """Refused after its dial (a known_hosts that is not a file): the hosts saw a TCP connection
    come and go (or none), and no SSH."""
    from types import SimpleNamespace

    from agent.errors import InputError
    from agent.inventory.model import Host
    from agent.runner import run

    plan = SimpleNamespace(ssh=SshSettings(known_hosts=tmp_path))  # a directory
    with pytest.raises(InputError, match="cannot read known_hosts"):
        run._ssh_connector(plan, [Host("web1", endpoint_of(listener))])
    accepted = accepted_within(listener, 1)  # none, if the refusal came before the dial ahead
    if accepted is not None:
        accepted.settimeout(5)
        assert accepted.recv(100) == b""
        accepted.close()
