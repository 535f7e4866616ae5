"""How an open SSH connection runs a command line: in the host's long-lived shell, or on a session each.

A connection takes its executor when it is made (SshConnection's `executor`). HostShellExecutor is
the default: one /bin/sh per connection (hostshell.py), 500 commands on 50 lab hosts at once in
0.41-0.58 s against 1.30-1.64 s with SessionExecutor (bench/command_runner.py). SessionExecutor
suits a host whose /bin/sh cannot be kept open, and carries data too large for the shell's stdin.
"""

from __future__ import annotations

import selectors
import time
from typing import Protocol

import paramiko

from agent.errors import CommandTimeout
from agent.secrets import mask
from agent.transport.hostshell import STDIN_LIMIT, HostShell, ShellEnded, ShellTimedOut, drain, with_data_on_stdin


class ConnectionLost(Exception):
    """The connection died under a command; `detail` is what the transport said, if anything.

    Internal to the transport: SshConnection turns it into HostUnreachable naming the host.
    """

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "connection lost")
        self.detail = detail


class CommandExecutor(Protocol):
    def execute(
        self, transport: paramiko.Transport, line: str, stdin: bytes | None, deadline: float, data: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of `line`, given `stdin` or `data` (which `line` prints
        with the shell function `ispagent_data`); CommandTimeout past `deadline`, ConnectionLost."""
        ...

    def close(self) -> None: ...


class SessionExecutor:
    """Each command on an SSH session of its own (an exec request), `stdin` streamed to it."""

    def __init__(self, open_timeout: float) -> None:
        self.open_timeout = open_timeout

    def execute(
        self, transport: paramiko.Transport, line: str, stdin: bytes | None, deadline: float, data: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        if data is not None:
            line, stdin = with_data_on_stdin(line), data
        try:
            channel = transport.open_session(timeout=self.open_timeout)
            channel.exec_command(line)
            if stdin is not None:
                _send_stdin(channel, stdin)
            channel.shutdown_write()
            status, out, err = _collect(channel, deadline, mask(line))
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionLost(str(error) or type(error).__name__) from None
        if status == -1 and not transport.is_active():
            # paramiko closes the channels of a dead connection with exit status -1: the command's
            # fate is unknown, so this is a lost connection (resumable), not a command that failed.
            # (-1 on a live connection is a command killed by a signal: a real failure.)
            raise ConnectionLost()
        return status, out, err

    def close(self) -> None:
        pass


class HostShellExecutor:
    """Commands in one long-lived /bin/sh on the connection, each in its own subshell (hostshell.py).

    Data beyond the shell's STDIN_LIMIT (stdin, or a command's data) goes on a session of its own, streamed.
    """

    def __init__(self, open_timeout: float) -> None:
        self.open_timeout = open_timeout
        self._sessions = SessionExecutor(open_timeout)
        self._shell: HostShell | None = None  # opened by the first command

    def execute(
        self, transport: paramiko.Transport, line: str, stdin: bytes | None, deadline: float, data: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        if len(stdin or b"") > STDIN_LIMIT or len(data or b"") > STDIN_LIMIT:
            return self._sessions.execute(transport, line, stdin, deadline, data)
        try:
            if self._shell is None:
                self._shell = HostShell(transport, self.open_timeout)
            return self._shell.run(line, stdin, deadline, data)
        except ShellTimedOut:
            self.close()
            raise CommandTimeout(f"command timed out: {one_line(mask(line))}") from None
        except ShellEnded as ended:
            self.close()
            if not transport.is_active():
                raise ConnectionLost() from None
            # The shell itself was killed (the command's fate is its own): a failed command, and
            # the next command gets a new shell.
            return -1, ended.out, ended.err
        except (paramiko.SSHException, OSError, EOFError) as error:
            self.close()
            raise ConnectionLost(str(error) or type(error).__name__) from None

    def close(self) -> None:
        """Close the host shell, if any: the next command opens a new one."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None


def one_line(command: str, limit: int = 120) -> str:
    """A command as one short line for an error message: a multi-line script becomes its words."""
    words = " ".join(command.split())
    return words if len(words) <= limit else words[: limit - 3] + "..."


def _send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
    except OSError:
        # The command closed its end before reading everything (it failed early, e.g. a missing
        # directory): its exit status and stderr say why. Only a dead connection is lost.
        if not channel.get_transport().is_active():
            raise


def _collect(channel: paramiko.Channel, deadline: float, shown: str) -> tuple[int, bytes, bytes]:
    # A selector, not select.select(): that fails with "filedescriptor out of range" once a run
    # holds more than 1024 descriptors (a few hundred hosts), and the channel's fd is then above it.
    with selectors.DefaultSelector() as selector:
        selector.register(channel, selectors.EVENT_READ)
        return _collect_until(channel, selector, deadline, shown)


def _collect_until(
    channel: paramiko.Channel, selector: selectors.BaseSelector, deadline: float, shown: str
) -> tuple[int, bytes, bytes]:
    out, err = bytearray(), bytearray()
    while True:
        drained = drain(channel, out, err)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            if channel.closed or channel.eof_received:
                break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            channel.close()
            raise CommandTimeout(f"command timed out: {one_line(shown)}")
        if not drained:
            selector.select(min(remaining, 0.5))
    status = channel.recv_exit_status()
    channel.close()
    return status, bytes(out), bytes(err)
