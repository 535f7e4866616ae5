"""Transports: how ispagent reaches hosts.

ssh.py: SSH connections on paramiko. hostshell.py: the shell on each that runs its commands.
testinfra_host.py: testinfra over those connections (not imported here: only the verify step
needs testinfra).
"""

from agent.transport.hostkeys import KnownHosts
from agent.transport.hostlog import HostLog
from agent.transport.ssh import CommandResult, ConnectionFactory, SshConnection, command_line

__all__ = ["CommandResult", "ConnectionFactory", "HostLog", "KnownHosts", "SshConnection", "command_line"]
