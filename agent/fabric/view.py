"""The reverse of adopt.py: a `fabric.Connection` over an ispagent connection, for a user's own
fabric code (`view.run`, `view.sudo`, `view.put`, `view.get`, port forwards) on the host ispagent
already reached and verified, without a second handshake or a second trust decision.

What goes through the view is fabric's: its commands are not in the run's host log and not
masked there, and they run on a session each (invoke's runner), not in our host shell.
"""

from __future__ import annotations

import fabric
import paramiko

from agent.errors import HostUnreachable
from agent.transport.ssh import SshConnection


class BorrowedConnection(fabric.Connection):
    """A fabric Connection over a client someone else owns: close() leaves that client open."""

    transport: paramiko.Transport | None
    _sftp: paramiko.SFTPClient | None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        # The SSH connection is ispagent's: it is closed with the SshConnection, not here.
        self.transport = None


def fabric_view(connection: SshConnection, config: fabric.Config | None = None) -> BorrowedConnection:
    """A fabric Connection over `connection`'s open, verified SSH connection.

    `config` is the fabric Config to use (default: fabric's defaults, without reading any
    ssh_config or fabric.yaml: the connection is already made). Valid while `connection` is open.
    """
    client = connection.client
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_active():
        raise HostUnreachable(f"{connection.host.name}: the connection to view is not open")
    endpoint = connection.host.endpoint
    view = BorrowedConnection(
        endpoint.address, user=endpoint.user, port=endpoint.port, config=config or fabric.Config(lazy=True)
    )
    view.client = client
    view.transport = transport  # is_connected from here on: fabric's open() does nothing
    return view
