"""Transports: how ispagent reaches hosts.

base.py: the Connection and Connector protocols. ssh.py: SSH connections on paramiko.
dialing.py: TCP connections opened ahead of their handshakes. executors.py and hostshell.py: how a
connection runs its commands. quoting.py: argv to shell lines. filewrite.py: the shell side of
writing a file. replay.py: a scripted connection for tests. testinfra_host.py: testinfra over a
connection (not imported here: only the verify step needs it).

The SSH names load on first use: a run imports this package with its protocols and dials its first
hosts before paramiko is imported (dialing.py says why).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent.transport.base import CommandResult, Connection, Connector
from agent.transport.hostlog import HostLog
from agent.transport.quoting import command_line

if TYPE_CHECKING:
    from agent.transport.hostkeys import KnownHosts
    from agent.transport.ssh import SshConnection, SshConnector

_ON_FIRST_USE = {
    "KnownHosts": "agent.transport.hostkeys",
    "SshConnection": "agent.transport.ssh",
    "SshConnector": "agent.transport.ssh",
}

__all__ = [
    "CommandResult",
    "Connection",
    "Connector",
    "HostLog",
    "KnownHosts",
    "SshConnection",
    "SshConnector",
    "command_line",
]


def __getattr__(name: str) -> Any:
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
