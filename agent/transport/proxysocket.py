"""A ProxyCommand as the socket of an SSH connection: paramiko's `ProxyCommand`, run as OpenSSH runs it.

paramiko's own class splits the line with shlex and runs it without a shell (OpenSSH uses
`/bin/sh -c 'exec COMMAND'`, and users' commands rely on the shell: pipes, `$HOME`), keeps the command's stderr in
a pipe nobody reads (a chatty command blocks), spins on a dead command's end of output until the
transport's timeout instead of reporting it, and leaves the command's children running on close.
This one answers end of output at once, keeps the last lines of stderr for the error message, and
ends the command's whole process group.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from typing import IO

import paramiko

from agent.secrets import printable
from agent.transport.executors import one_line

STDERR_LINES = 5
STDIN_GRACE = 0.2  # seconds a command gets to end once its stdin is closed (ssh -W and nc do) before SIGTERM
EXIT_GRACE = 1.0  # seconds a command gets to end after SIGTERM before SIGKILL
STDERR_WAIT = 0.5  # seconds to wait for an ended command's stderr (a child of it may hold the pipe open)


class ProxyCommandSocket(paramiko.ProxyCommand):
    """The stdin and stdout of `/bin/sh -c COMMAND_LINE`, as a socket for paramiko's Transport."""

    def __init__(self, command_line: str) -> None:  # not super().__init__: see the module's doc
        # As OpenSSH: `exec` puts the command in the shell's place, and a line starting with `-` is no option.
        self.cmd = ["/bin/sh", "-c", f"exec {command_line}"]
        self.timeout: float | None = None
        self.received = 0  # bytes the command has given: none means no SSH server ever answered
        self.ended_running = False  # close() had to end it: it had not ended on its own
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.process = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # its own process group, ended as a whole on close
        )
        self._stdin, self._stdout, self._stderr_pipe = _pipes(self.process)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="proxy-command-stderr", daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self) -> None:
        for line in self._stderr_pipe:
            self._stderr.append(line.decode(errors="replace"))

    def send(self, content: bytes) -> int:  # type: ignore[override]  # paramiko's Transport sends bytes
        try:
            self._stdin.write(content)
        except (OSError, ValueError):
            raise paramiko.ProxyCommandFailure("ProxyCommand", self.failure("its stdin was closed")) from None
        return len(content)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of the command's output; b"" once it ended (paramiko's EOFError)."""
        start = time.monotonic()
        while True:
            wait = None if self.timeout is None else self.timeout - (time.monotonic() - start)
            if wait is not None and wait <= 0:
                raise TimeoutError()  # socket.timeout, which paramiko's Transport waits for
            try:
                ready, _, _ = select.select([self._stdout], [], [], wait)
                if ready:
                    data = os.read(self._stdout.fileno(), size)
                    self.received += len(data)
                    return data
            except (OSError, ValueError):  # closed under us: as the end of the connection
                return b""

    def failure(self, ssh_said: str) -> str:
        """Why the connection over the command failed (`ssh_said`: paramiko's error), for one line."""
        status = self.process.poll()
        if status is not None:  # its last words may still be in the pipe: the reader ends at the pipe's end
            self._stderr_reader.join(STDERR_WAIT)
        # OpenSSH's `ssh -W` ends with "stdio forwarding failed" after the line that says why.
        said = "; ".join(line.strip() for line in list(self._stderr)[-2:] if line.strip())
        said = f": {printable(one_line(said, 200), one_line=True)}" if said else ""
        if status is None or self.ended_running:
            return f"{printable(one_line(ssh_said, 200), one_line=True)} through the ProxyCommand{said}"
        if status < 0:
            return f"the ProxyCommand was ended by signal {-status}{said}"
        return f"the ProxyCommand exited with status {status}{said}"

    def close(self) -> None:
        """End the command: its stdin closed first (the end of the connection, as ssh does), then signals."""
        for pipe in (self._stdin, self._stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self.process.poll() is not None or self._ended_within(STDIN_GRACE):
            return
        self.ended_running = True
        self._signal(signal.SIGTERM)
        if not self._ended_within(EXIT_GRACE):
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _ended_within(self, seconds: float) -> bool:
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _signal(self, number: int) -> None:
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:  # ended meanwhile
            pass


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes], IO[bytes]]:
    """The command's stdin, stdout and stderr, which Popen opened as pipes."""
    if process.stdin is None or process.stdout is None or process.stderr is None:
        raise RuntimeError("the ProxyCommand was started without its pipes")
    return process.stdin, process.stdout, process.stderr
