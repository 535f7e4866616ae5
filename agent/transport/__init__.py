"""Transports: how ispagent reaches hosts. One module per backend (ssh.py: paramiko)."""

from agent.transport.hostkeys import KnownHosts
from agent.transport.hostlog import HostLog
from agent.transport.ssh import CommandResult, ConnectionFactory, SshConnection, command_line

__all__ = ["CommandResult", "ConnectionFactory", "HostLog", "KnownHosts", "SshConnection", "command_line"]
