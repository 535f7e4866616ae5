"""A connection found dead says why: the server's own disconnect reason, or that it closed the
connection, not only "connection lost" (at 1000 hosts under load a few hosts were lost with no
detail at all)."""

from __future__ import annotations

import logging
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


def _connection(client: paramiko.Transport, log: ssh.HostLog | None = None) -> ssh.SshConnection:
    """Our SshConnection over `client`, its paramiko log attached as for any connection."""
    return ssh.SshConnection(
        Host(name="h1", endpoint=Endpoint("198.18.0.2", 22, "root", None)),
        SimpleNamespace(get_transport=lambda: client),
        log or ssh.HostLog(None),
        SshSettings(),
    )


def _lost_message(connection: ssh.SshConnection) -> str:
    with pytest.raises(HostUnreachable) as raised:
        connection._transport()
    connection.paramiko_log.detach()
    return str(raised.value)


def _wait_dead(client: paramiko.Transport) -> None:
    client.join(10)
    assert not client.is_active()


def test_the_servers_disconnect_reason_is_kept():
    client, server = _pair()
    connection = _connection(client)
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_DISCONNECT)
    message.add_int(11)
    message.add_string("Too many sessions\nfor you")
    message.add_string("")
    server._send_message(message)
    _wait_dead(client)
    server.close()
    assert (
        _lost_message(connection) == "h1: connection lost: the server disconnected: Too many sessions for you (code 11)"
    )


def test_a_closed_socket_is_the_server_closing_the_connection():
    client, server = _pair()
    connection = _connection(client)
    server.sock.shutdown(socket.SHUT_RDWR)
    _wait_dead(client)
    server.close()
    assert _lost_message(connection) == "h1: connection lost: the server closed the connection"


def test_a_connection_paramiko_drops_without_raising_says_why_in_the_error_and_the_host_log(tmp_path):
    """paramiko's reader thread ends quietly on a message for a channel it never opened: it only
    logs an error. That error reaches the host log (not stderr) and the one-line reason."""
    client, server = _pair()
    log = ssh.HostLog(tmp_path / "h1.log")
    connection = _connection(client, log)
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_DATA)
    message.add_int(7)
    message.add_string("stray")
    server._send_message(message)
    _wait_dead(client)
    server.close()
    assert _lost_message(connection) == "h1: connection lost: Channel request for unknown channel 7"
    log.close()
    assert "! ssh: Channel request for unknown channel 7" in (tmp_path / "h1.log").read_text()
    assert not [h for h in logging.getLogger("ispagent.ssh.h1").handlers if isinstance(h, ssh.ParamikoLog)]  # detached


def test_a_host_log_that_cannot_be_written_never_reaches_paramikos_reader_thread(tmp_path):
    class FullDisk(ssh.HostLog):
        def write(self, kind, text):
            raise OSError(28, "No space left on device")

    handler = ssh.ParamikoLog("h9", FullDisk(None))
    handler.emit(logging.LogRecord("x", logging.ERROR, __file__, 1, "Socket exception: reset", None, None))
    assert handler.last_error == "Socket exception: reset"
