"""Replay transport: a scripted Connection (agent/transport/base.py), so steps can be tested without hosts.

It records every command as the exact line that would reach the remote shell (argv quoted, the
`sudo -n -- sh -c` wrapper of a sudo host included) and every upload as (dest, mode, content),
and answers from a script: the commands and uploads a test expects, in order, each with the
output the host would give. Anything the script does not expect raises ScriptMismatch, an
AssertionError naming what ran and what was expected; it is also kept in `mismatches`, so a step
that swallows the exception still fails the test at `assert_done()`.

testinfra (the verify step) runs over it too: its backend sends every check through `run`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

from agent.errors import CommandTimeout, HostUnreachable, TransportError
from agent.inventory.model import Host
from agent.secrets import mask, shown
from agent.transport.base import CommandResult
from agent.transport.hostlog import HostLog
from agent.transport.quoting import remote_line

Failure = Literal["timeout", "connection_lost"]


@dataclass(frozen=True)
class ExpectedCommand:
    """One command the host will be sent, matched by its exact line, a regex or a substring.

    The regex is searched for with `.` matching newlines too (steps send multi-line scripts).
    stdout, stderr and exit_status are the host's answer; `failure` makes the transport fail
    instead (a timeout, a dropped connection). `timeout`, when set, must be the one the step asks for.
    """

    command: str | None = None
    match: str | None = None
    contains: str | None = None
    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0
    failure: Failure | None = None
    timeout: float | None = None
    stdin: bytes | None = None  # when set, what the command must be sent on its stdin (or as its data)
    stdin_sha256: str | None = None  # when set, the SHA-256 of what it must be sent on its stdin (or as its data)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.command, self.match, self.contains)) != 1:
            raise ValueError("an expected command needs exactly one of command, match, contains")

    def matches(self, line: str) -> bool:
        if self.command is not None:
            return line == self.command
        if self.match is not None:
            return re.search(self.match, line, re.DOTALL) is not None
        return self.contains is not None and self.contains in line

    def describe(self) -> str:
        if self.command is not None:
            return f"command {shown(self.command, 160)}"
        if self.match is not None:
            return f"command matching /{self.match}/"
        return f"command containing {shown(self.contains, 160)}"


@dataclass(frozen=True)
class ExpectedUpload:
    """One upload the step will make; unset fields are not checked. `error` makes it fail (TransportError)."""

    dest: str
    mode: int | None = None
    content: bytes | None = None
    sha256: str | None = None
    make_parents: bool | None = None
    error: str | None = None

    def problems(self, upload: Upload) -> list[str]:
        wrong = []
        if upload.dest != self.dest:
            wrong.append(f"dest {upload.dest}, expected {self.dest}")
        if self.mode is not None and upload.mode != self.mode:
            wrong.append(f"mode {upload.mode:o}, expected {self.mode:o}")
        if self.content is not None and upload.content != self.content:
            wrong.append(
                f"content {shown(upload.text, 160)}, expected {shown(self.content.decode(errors='replace'), 160)}"
            )
        if self.sha256 is not None and upload.sha256 != self.sha256:
            wrong.append(f"sha256 {upload.sha256}, expected {self.sha256}")
        if self.make_parents is not None and upload.make_parents != self.make_parents:
            wrong.append(f"make_parents {upload.make_parents}, expected {self.make_parents}")
        return wrong

    def describe(self) -> str:
        mode = f" mode {self.mode:o}" if self.mode is not None else ""
        return f"upload to {self.dest}{mode}"


Expected = ExpectedCommand | ExpectedUpload


@dataclass(frozen=True)
class Command:
    """A command as it reached the host."""

    line: str
    timeout: float | None = None
    stdin: bytes | None = None


@dataclass(frozen=True)
class Upload:
    dest: str
    mode: int
    content: bytes
    make_parents: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class ScriptMismatch(AssertionError):
    """The step sent something its script did not expect (or left expected work undone)."""


class ReplayConnection:
    """A Connection to one host whose `run` and `put` follow `script`, in order.

    Like SshConnection it logs each command, its output and exit status to `log`, masks secrets
    in the CommandResult, and wraps commands in sudo on a sudo host.
    """

    def __init__(self, host: Host, script: Iterable[Expected] = (), log: HostLog | None = None) -> None:
        self.host = host
        self.log = log or HostLog(None)
        self.script: list[Expected] = list(script)
        self.position = 0  # how many expectations have been met
        self.transcript: list[Command | Upload] = []
        self.mismatches: list[str] = []
        self.closed = False

    # -- what steps call (the Connection protocol, agent/transport/base.py) ----------------------

    def close(self) -> None:
        self.closed = True

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
        """Answer `command` from the script, as SshConnection.run would report the host's answer.

        A command's `data` is checked as its stdin is: both are the bytes it is given."""
        if data is not None:
            if stdin is not None:
                raise ValueError("a command is given its bytes on stdin or as its data, not both")
            stdin = data
        line = remote_line(command, self.host.sudo if sudo is None else sudo)
        self.log.write("$", line)
        expected = self._answer(Command(line, timeout, stdin))
        if expected.timeout is not None and timeout != expected.timeout:
            self.mismatches.append(f"{shown(line, 160)} ran with timeout {timeout}, expected {expected.timeout}")
        if expected.stdin_sha256 is not None and hashlib.sha256(stdin or b"").hexdigest() != expected.stdin_sha256:
            self.mismatches.append(
                f"{shown(line, 160)} got stdin with sha256 {hashlib.sha256(stdin or b'').hexdigest()}, "
                f"expected {expected.stdin_sha256}"
            )
        if expected.stdin is not None and stdin != expected.stdin:
            got = shown((stdin or b"").decode(errors="replace"), 160)
            self.mismatches.append(
                f"{shown(line, 160)} got stdin {got}, expected {shown(expected.stdin.decode(errors='replace'), 160)}"
            )
        if expected.failure == "timeout":
            raise CommandTimeout(f"command timed out: {mask(line)[:200]}")
        if expected.failure == "connection_lost":
            raise HostUnreachable(f"{self.host.name}: connection lost")
        if log_output:
            self.log.write("|", expected.stdout)
            self.log.write("!", expected.stderr)
        self.log.write("=", f"exit {expected.exit_status}")
        return CommandResult(mask(line), expected.exit_status, expected.stdout, expected.stderr)

    def put(self, data: bytes, path: str, mode: int = 0o644, *, make_parents: bool = False) -> None:
        """Record an upload of `data` to `path`; fails (TransportError) where the script says so."""
        self.log.write("$", f"put {path} ({len(data)} bytes, mode {mode:o})")
        upload = Upload(path, mode, bytes(data), make_parents)
        expected = self._next(upload)
        if not isinstance(expected, ExpectedUpload):
            self._unexpected(upload, expected)
        wrong = expected.problems(upload)
        if wrong:
            self._fail(f"upload #{len(self.transcript)} on {self.host.name}: " + "; ".join(wrong))
        self.position += 1
        if expected.error:
            raise TransportError(f"{self.host.name}: upload to {path} failed: {expected.error}")

    # -- what tests call ----------------------------------------------------------------------

    @property
    def commands(self) -> list[str]:
        return [item.line for item in self.transcript if isinstance(item, Command)]

    @property
    def uploads(self) -> list[Upload]:
        return [item for item in self.transcript if isinstance(item, Upload)]

    def remaining(self) -> list[Expected]:
        return self.script[self.position :]

    def assert_done(self) -> None:
        """Raise ScriptMismatch if anything unexpected happened or expected work was not done."""
        problems = list(self.mismatches)
        if self.remaining():
            problems.append("expected but never sent:\n" + _listing(self.remaining()))
        if problems:
            raise ScriptMismatch("\n".join(problems) + "\n\nwhat the host was sent:\n" + self.transcript_text())

    def transcript_text(self) -> str:
        lines = []
        for number, item in enumerate(self.transcript, 1):
            if isinstance(item, Upload):
                lines.append(f"  {number}. upload {item.dest} mode {item.mode:o} sha256 {item.sha256}")
            else:
                sent = f" (stdin: {len(item.stdin)} bytes)" if item.stdin is not None else ""
                lines.append(f"  {number}. {shown(item.line, 160)}{sent}")
        return "\n".join(lines) or "  (nothing)"

    # -- matching -------------------------------------------------------------------------------

    def _answer(self, command: Command) -> ExpectedCommand:
        expected = self._next(command)
        if not isinstance(expected, ExpectedCommand) or not expected.matches(command.line):
            self._unexpected(command, expected)
        self.position += 1
        return expected

    def _next(self, item: Command | Upload) -> Expected | None:
        self.transcript.append(item)
        return self.script[self.position] if self.position < len(self.script) else None

    def _unexpected(self, item: Command | Upload, expected: Expected | None) -> NoReturn:
        what = f"upload to {item.dest}" if isinstance(item, Upload) else shown(item.line, 160)
        kind = "upload" if isinstance(item, Upload) else "command"
        if expected is None:
            self._fail(
                f"unexpected {kind} #{len(self.transcript)} on {self.host.name}: {what}\n"
                "the script expected nothing more"
            )
        detail = ""
        if isinstance(item, Command) and isinstance(expected, ExpectedCommand):
            detail = "\n" + _difference(item.line, expected)
        self._fail(
            f"unexpected {kind} #{len(self.transcript)} on {self.host.name}: {what}\n"
            f"expected next:\n{_listing(self.remaining())}{detail}"
        )

    def _fail(self, message: str) -> NoReturn:
        self.mismatches.append(message)
        raise ScriptMismatch(message)


def _difference(line: str, expected: ExpectedCommand) -> str:
    """How a sent command differs from the exact one expected (a diff), or the command in full."""
    if expected.command is None:
        return "the command in full:\n" + line
    diff = difflib.unified_diff(_lines(expected.command), _lines(line), "expected", "sent", n=1)
    return "".join(diff)


def _lines(text: str) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


def _listing(items: Sequence[Expected], limit: int = 8) -> str:
    lines = [f"  {number}. {item.describe()}" for number, item in enumerate(items[:limit], 1)]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines) or "  (nothing)"
