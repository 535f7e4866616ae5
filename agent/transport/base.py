"""The transport's protocols: what the runner and the steps ask of a connection and of a connector.

SshConnection (ssh.py) and ReplayConnection (replay.py) are connections; SshConnector is a
connector. Another transport (a Fabric connection, a container exec) plugs in by implementing these,
without a change to the runner or the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.inventory.model import Host
from agent.secrets import mask
from agent.transport.hostlog import HostLog


@dataclass(frozen=True)
class CommandResult:
    command: str  # masked: safe to print
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def error_line(self) -> str:
        """The last line the command wrote to stderr (or stdout), masked, for one-line errors."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return mask(text[-1]) if text else f"exit status {self.exit_status}"


@runtime_checkable
class Connection(Protocol):
    """An open connection to one host, used by one thread: what steps run their commands on."""

    host: Host
    log: HostLog

    def run(
        self,
        command: str | Sequence[str],
        *,
        sudo: bool | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
        data: bytes | None = None,
        log_output: bool = True,
    ) -> CommandResult:
        """Run `command` (a shell line, or argv to be quoted) and wait for its exit status.

        `stdin`: bytes on the command's stdin. `data`: bytes the line prints where it wants them
        with the shell function `ispagent_data` (`ispagent_data >file`); on the host's shell that
        writes them with no process. One or the other.
        Raises CommandTimeout past `timeout`, HostUnreachable when the connection is lost.
        """
        ...

    def put(self, data: bytes, path: str, mode: int = 0o644, *, make_parents: bool = False) -> None:
        """Write `data` to `path` atomically with `mode`; TransportError when it cannot."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Connector(Protocol):
    """Opens the connections of a run; what they share (keys, bastions) lives here until close()."""

    def connect(self, host: Host, log: HostLog | None = None) -> Connection:
        """An open connection to `host`; raises HostUnreachable when it cannot be had."""
        ...

    def close(self) -> None: ...
