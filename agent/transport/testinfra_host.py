"""testinfra over the run's own SSH connection: a testinfra backend whose commands go through it.

testinfra's paramiko backend accepts any host key (WarningPolicy, no known_hosts), opens a second
connection per host, and after a dropped connection quietly makes a new, unverified one. This
backend makes none: every check runs through the connection's `run`, over the connection whose host
key was verified, with its sudo -n, command timeout and masked host log.
"""

from __future__ import annotations

from typing import Any

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from agent.transport.base import Connection


def testinfra_host(connection: Connection) -> testinfra.host.Host:
    """A testinfra Host (`file`, `socket`, `run`, ...) that checks the host over `connection`."""
    return testinfra.host.Host(_ConnectionBackend(connection))


class _ConnectionBackend(BaseBackend):  # type: ignore[misc]  # testinfra ships no type information
    NAME = "ispagent"

    def __init__(self, connection: Connection) -> None:
        # testinfra's own sudo stays off: the connection adds `sudo -n` when the host needs it.
        super().__init__(connection.host.name)
        self.connection = connection
        # Our transport decodes UTF-8; spares testinfra a remote python run to ask for the locale.
        self._encoding = "utf-8"

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        line = self.get_command(command, *args)
        result = self.connection.run(line, log_output=False)
        return self.result(result.exit_status, self.encode(line), result.stdout, result.stderr)
