"""One long-lived /bin/sh per connection, running each of a run's commands in a subshell of its own.

An SSH session per command costs the host a fork of sshd, a login shell started by it, and a
dozen packets each way; on the lab that was about 4 ms of CPU per command, both ends counted, more
than most of the commands themselves. Here the session and its shell are opened once per host,
and each command costs the host a fork (no exec) of that shell. bench/command_runner.py, 500 short
commands over 50 lab hosts: 0.41-0.58 s wall and 0.82-1.14 s of the machine's CPU this way,
1.30-1.64 s and 2.55-3.25 s with a session each.

Every command runs as `(eval 'LINE')`: in a subshell, so `exit`, `cd`, `umask` and variables end
with it, and a syntax error in LINE fails LINE only. Its stdin is /dev/null, or the bytes given,
piped from the shell's built-in printf with the bytes as its format: raw bytes sent after the
command line could be swallowed as script (the shell reads ahead), and the built-in printf runs no
program on the host, where base64 -d would. Bytes given as a command's data instead are the
shell function `ispagent_data`, defined in its subshell around the same printf: a line that
redirects it into a file (`ispagent_data >&3`) writes them with no process at all, where the pipe
costs a fork and its reader a program. After the subshell the shell prints a marker with the
exit status on stdout and a marker on stderr; the markers carry a random token, so no command's
output can end another's.

Commands run under the host's /bin/sh (dash on Debian), as Ansible's and pyinfra's shell
commands do, and as commands through `sudo -n -- sh -c` always did here. A process a command
leaves running in the background with its stdout still on the shell's may write into a later
command's output: redirect it (`nohup daemon >log 2>&1 &`), as over plain ssh, where such a
command would not even return until the process ended.
"""

from __future__ import annotations

import re
import selectors
import shlex
import time
import uuid

import paramiko

# Data for a command's stdin (or its data) larger than this goes on a session of its own, streamed. Below it, the
# format (at most 4 times as long) stays in the shell's memory: dash and bash, the /bin/sh of every
# system ISPmanager runs on, have printf built in, so the bytes (a password in a config file) never
# show in a process list.
STDIN_LIMIT = 32 * 1024
# Bytes that printf's format carries as they are: printable ASCII and newline, but for the
# backslash, "%" and the single quote (the format is one single-quoted word).
_ESCAPED = re.compile(rb"[^\n -$&(-\[\]-~]")
_READ_CHUNK = 65536
# An end marker line is at most 38 bytes ("\n", the token, " ", a status up to 255, "\n"): searching
# again from this far before the end of what was read finds one that a read split in two.
_MARKER_TAIL = 64


class ShellEnded(Exception):
    """The shell went away before the command's end markers (killed, or its session closed).
    Holds what the command had written by then."""

    def __init__(self, out: bytes, err: bytes) -> None:
        super().__init__("the host's shell ended")
        self.out, self.err = out, err


class ShellTimedOut(Exception):
    """The command's deadline passed; the shell has been closed (the command may still run)."""


class HostShell:
    """The shell on one host's connection. Not thread-safe: one command at a time, as one host's steps run."""

    def __init__(self, transport: paramiko.Transport, open_timeout: float) -> None:
        self._channel = transport.open_session(timeout=open_timeout)
        try:
            self._channel.exec_command("exec /bin/sh -s")
        except BaseException:
            self._channel.close()
            raise
        self._token = uuid.uuid4().hex
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._channel, selectors.EVENT_READ)

    def run(
        self, line: str, stdin: bytes | None, deadline: float, data: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        """Exit status, stdout and stderr of `line`. ShellTimedOut after `deadline` (the shell is
        closed then: the command still running holds it), ShellEnded if the shell went away."""
        self._channel.sendall(command_script(self._token, line, stdin, data))
        return self._collect(deadline)

    def _collect(self, deadline: float) -> tuple[int, bytes, bytes]:
        channel = self._channel
        out, err = bytearray(), bytearray()
        searched = (0, 0)  # how far both streams are known to hold no marker: a big output is not rescanned
        while True:
            drained = drain(channel, out, err)
            if drained and (ended := command_output(self._token, out, err, searched)) is not None:
                return ended
            searched = (max(0, len(out) - _MARKER_TAIL), max(0, len(err) - _MARKER_TAIL))
            if not drained and (channel.closed or channel.eof_received):
                raise ShellEnded(bytes(out), bytes(err))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise ShellTimedOut()
            if not drained:
                self._selector.select(min(remaining, 0.5))

    def close(self) -> None:
        self._selector.close()
        self._channel.close()


def drain(channel: paramiko.Channel, out: bytearray, err: bytearray) -> bool:
    """Append what `channel` has received on stdout and stderr so far; False if it had nothing."""
    drained = False
    while channel.recv_ready():
        out += channel.recv(_READ_CHUNK)
        drained = True
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(_READ_CHUNK)
        drained = True
    return drained


def command_script(token: str, line: str, stdin: bytes | None, data: bytes | None = None) -> bytes:
    """What the shell reads to run `line` once, with `stdin` (or /dev/null) and `data` (the
    function `ispagent_data`), and print the end markers with `token` (see the module's docstring)."""
    ends = f"; printf '\\n%s %d\\n' {token} \"$?\"; printf '\\n%s\\n' {token} >&2\n"
    if data is not None:
        if stdin is not None:
            raise ValueError("a command is given its bytes on stdin or as its data, not both")
        function = b"ispagent_data() { printf '" + printf_format(data) + b"'; }; "
        return b"(" + function + f"eval {shlex.quote(line)}) </dev/null{ends}".encode()
    if stdin is None:
        return f"(eval {shlex.quote(line)}) </dev/null{ends}".encode()
    return b"printf '" + printf_format(stdin) + f"' | (eval {shlex.quote(line)}){ends}".encode()


def with_data_on_stdin(line: str) -> str:
    """`line` run where its data comes on stdin (a session of its own, or `sudo`'s shell, which
    the host shell's function does not reach): `ispagent_data` is then `cat`."""
    return f"ispagent_data() {{ cat; }}; {line}"


def printf_format(data: bytes) -> bytes:
    """`data` as a printf format that prints exactly it: every byte but printable ASCII and newline
    as a three-digit octal escape (POSIX printf; NUL included). A leading "-" is escaped too:
    bash's printf would take it for an option."""
    fmt = _ESCAPED.sub(lambda match: b"\\%03o" % match[0][0], data)
    return b"\\055" + fmt[1:] if fmt.startswith(b"-") else fmt


def command_output(
    token: str, out: bytes | bytearray, err: bytes | bytearray, searched: tuple[int, int] = (0, 0)
) -> tuple[int, bytes, bytes] | None:
    """Exit status, stdout and stderr of a command once both streams hold its end markers, else None.

    `searched`: offsets in stdout and stderr before which no marker starts. Anything after the
    markers was written by something the command left running in the background: it belongs to
    no command, and is dropped.
    """
    status_marker, stderr_marker = f"\n{token} ".encode(), f"\n{token}\n".encode()
    at, err_end = out.find(status_marker, searched[0]), err.find(stderr_marker, searched[1])
    if at < 0 or err_end < 0:
        return None
    begins = at + len(status_marker)
    ends = out.find(b"\n", begins)
    if ends < 0:
        return None
    return int(out[begins:ends]), bytes(out[:at]), bytes(err[:err_end])
