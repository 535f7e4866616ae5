"""A `fabric.Connection` as an ispagent connection: fabric opens it (its auth, its ssh_config, its
gateway), ispagent decides whether the server is the one it trusts and runs the commands.

fabric gives every client paramiko's AutoAddPolicy: any host key is accepted, silently. A
connection fabric has yet to open is opened here under the run's known_hosts and policy; one it
already opened is checked after the fact, before a single command goes over it. Either way the
server's key must be the one our known_hosts holds for the address fabric connected to.
"""

from __future__ import annotations

import socket

import fabric
import paramiko

from agent.errors import HostUnreachable
from agent.inventory.model import Host, SshSettings
from agent.secrets import mask
from agent.transport.hostkeys import KnownHosts, changed_key, known_hosts_name
from agent.transport.hostlog import HostLog
from agent.transport.ssh import SshConnection


def adopt_fabric_connection(
    connection: fabric.Connection,
    host: Host,
    known_hosts: KnownHosts,
    log: HostLog | None = None,
    settings: SshSettings = SshSettings(),
) -> SshConnection:
    """`connection` as the ispagent connection of `host`, its server key checked against `known_hosts`.

    Opened here if fabric had not opened it; then the ispagent connection owns it and closes it when
    it is closed. One already open stays its owner's (close() here ends only our host shell).
    Raises HostKeyMismatch, UnknownHostKey or HostUnreachable.
    """
    opened_here = not connection.is_connected
    if opened_here:
        open_guarded(connection, known_hosts)
    try:
        check_host_key(connection, known_hosts)
    except BaseException:
        if opened_here:
            connection.close()
        raise
    _no_delay(connection.transport)
    return SshConnection(host, connection.client, log, settings, owns_client=opened_here)


def open_guarded(connection: fabric.Connection, known_hosts: KnownHosts) -> None:
    """Open `connection` with our host key policy in place of fabric's AutoAddPolicy; a bastion
    fabric goes through (a Connection as its `gateway`) is opened first, under the same policy."""
    gateway = connection.gateway
    if isinstance(gateway, fabric.Connection):
        (check_host_key if gateway.is_connected else open_guarded)(gateway, known_hosts)
    known_hosts.guard(connection.client, connection.host, connection.port)
    try:
        connection.open()
    except BaseException as error:
        # fabric records the transport only once connect() returns: close the client itself, or a
        # refused handshake would leave paramiko's reader thread behind.
        connection.client.close()
        raise _open_failed(connection, error, known_hosts) from None


def _open_failed(connection: fabric.Connection, error: BaseException, known_hosts: KnownHosts) -> BaseException:
    """What to raise for a failed open: ours as it is, paramiko's and the network's as HostUnreachable."""
    if isinstance(error, paramiko.BadHostKeyException):
        return changed_key(connection.host, connection.port, error.expected_key, error.key, known_hosts.path)
    if isinstance(error, paramiko.AuthenticationException):
        return HostUnreachable(
            f"{_where(connection)}: authentication failed: check the user and the key "
            "fabric offers (connect_kwargs, ssh_config IdentityFile)"
        )
    if isinstance(error, (OSError, EOFError, paramiko.SSHException)):
        reason = "timed out" if isinstance(error, TimeoutError) else str(error) or type(error).__name__
        return HostUnreachable(f"cannot connect to {_where(connection)}: {mask(reason)}")
    return error  # UnknownHostKey from our policy, KeyboardInterrupt, a bug: unchanged


def check_host_key(connection: fabric.Connection, known_hosts: KnownHosts) -> None:
    """The server key of open `connection` is one `known_hosts` trusts for the address it reached.

    A key of another type than the one on file counts as changed, not as new: accept-new records
    only hosts it has never seen.
    """
    transport = connection.transport
    if transport is None or not transport.is_active():
        raise HostUnreachable(f"{_where(connection)}: the fabric connection to adopt is not open")
    sent = transport.get_remote_server_key()
    name = known_hosts_name(connection.host, connection.port)
    trusted = known_hosts.keys_for(name)
    if not trusted:
        # The policy decides: strict raises UnknownHostKey, accept-new records the key.
        known_hosts.missing_key_policy().missing_host_key(connection.client, name, sent)
        return
    expected = trusted.get(sent.get_name()) or next(iter(trusted.values()))
    if expected != sent:
        raise changed_key(connection.host, connection.port, expected, sent, known_hosts.path)


def _no_delay(transport: paramiko.Transport) -> None:
    # fabric leaves Nagle on: every command would wait out a delayed ACK (see transport/ssh.py).
    sock = transport.sock
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _where(connection: fabric.Connection) -> str:
    return f"{connection.user}@{connection.host}:{connection.port}"
