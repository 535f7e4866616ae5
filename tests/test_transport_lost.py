"""A connection found dead says why: the server's own disconnect reason, or that it closed the
connection, not only "connection lost" (at 1000 hosts under load a few hosts were lost with no
detail at all)."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import paramiko
import pytest

from agent.errors import HostUnreachable
from agent.inventory.model import Endpoint, Host, SshSettings
from agent.transport import ssh


def _pair() -> tuple[ssh.AeadFirstTransport, paramiko.Transport]:
    """A client transport of ours talking to an in-process paramiko server over a socket pair."""
    client_end, server_end = socket.socketpair()
    server = paramiko.Transport(server_end)
    server.add_server_key(paramiko.RSAKey.generate(1024))
    ready = threading.Thread(target=server.start_server, kwargs={"server": paramiko.ServerInterface()})
    ready.start()
    client = ssh.AeadFirstTransport(client_end)
    client.start_client(timeout=10)
    ready.join(10)
    return client, server


def _lost_message(client: paramiko.Transport) -> str:
    connection = ssh.SshConnection(Host(name="h1", endpoint=Endpoint("198.18.0.2", 22, "root", None)),
                                   ssh.ConnectionFactory(SshSettings()), ssh.HostLog(None))
    connection.fabric_connection = SimpleNamespace(client=SimpleNamespace(get_transport=lambda: client))
    with pytest.raises(HostUnreachable) as raised:
        connection._transport()
    return str(raised.value)


def _wait_dead(client: paramiko.Transport) -> None:
    client.join(10)
    assert not client.is_active()


def test_the_servers_disconnect_reason_is_kept():
    client, server = _pair()
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_DISCONNECT)
    message.add_int(11)
    message.add_string("Too many sessions\nfor you")
    message.add_string("")
    server._send_message(message)
    _wait_dead(client)
    server.close()
    assert _lost_message(client) == "h1: connection lost: the server disconnected: Too many sessions for you (code 11)"


def test_a_closed_socket_is_the_server_closing_the_connection():
    client, server = _pair()
    server.sock.shutdown(socket.SHUT_RDWR)
    _wait_dead(client)
    server.close()
    assert _lost_message(client) == "h1: connection lost: the server closed the connection"
