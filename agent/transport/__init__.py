"""Transports: how ispagent reaches hosts.

base.py: the Connection and Connector protocols. ssh.py: SSH connections on paramiko.
executors.py and hostshell.py: how a connection runs its commands. quoting.py: argv to shell lines.
filewrite.py: the shell side of writing a file. replay.py: a scripted connection for tests.
testinfra_host.py: testinfra over a connection (not imported here: only the verify step needs it).
"""

from agent.transport.base import CommandResult, Connection, Connector
from agent.transport.hostkeys import KnownHosts
from agent.transport.hostlog import HostLog
from agent.transport.quoting import command_line
from agent.transport.ssh import SshConnection, SshConnector

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
