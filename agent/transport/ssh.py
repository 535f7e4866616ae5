"""SSH transport on paramiko: one verified connection per host, reused for all of a run's steps.

Each connection is a paramiko client with the run's host key policy (hostkeys.py), reaching the
host directly or through a direct-tcpip channel of its bastion's connection. fabric's `Connection`
did this once: it cost 3-4 ms of CPU per host in invoke's configuration merges (a fifth of the
control node's CPU on 50 hosts), and its shared configuration was not thread-safe.
Commands run in one long-lived /bin/sh on a session of that connection's transport (hostshell.py),
not through fabric's `Connection.run`: invoke's runner starts I/O threads and polls every 10 ms for
each command. 500 commands on 50 lab hosts at once took 0.41-0.58 s through the
host shell, 1.30-1.64 s on a session each and 2.01-2.31 s through fabric (bench/command_runner.py,
three rounds). Uploads are commands too (the bytes on stdin): no SFTP session.
"""

from __future__ import annotations

import logging
import posixpath
import random
import selectors
import shlex
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import paramiko

from agent.errors import (
    CommandTimeout,
    HostKeyMismatch,
    HostUnreachable,
    InputError,
    TransportError,
)
from agent.inventory.model import Endpoint, Host, SshSettings
from agent.secrets import mask
from agent.transport.hostkeys import KnownHosts, known_hosts_name
from agent.transport.hostshell import STDIN_LIMIT, HostShell, ShellEnded, ShellTimedOut, drain
from agent.transport.hostlog import HostLog

CONNECT_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.5
# Handshakes in flight at once, whatever --forks says. A thousand threads opening connections
# together make every handshake slow (key exchange is CPU on both ends; here both ends share the
# machine) until connect and banner timeouts call hosts unreachable that are not: with --forks 500
# over 1000 lab hosts, 287 were. Waiting for a slot does not count against connect_timeout.
MAX_HANDSHAKES = 48


def command_line(argv: Sequence[str]) -> str:
    """One shell command line from `argv`, every word quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(word)) for word in argv)


def remote_line(command: str | Sequence[str], sudo: bool) -> str:
    """The line the host's shell gets: `command` as written (or argv quoted), run as root through
    `sudo -n` when `sudo` (never a password prompt)."""
    line = command if isinstance(command, str) else command_line(command)
    return command_line(["sudo", "-n", "--", "sh", "-c", line]) if sudo else line


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


class PrivateKeys:
    """Private keys loaded once per run, whatever the number of hosts that use them."""

    def __init__(self) -> None:
        self._keys: dict[Path, paramiko.PKey] = {}
        self._lock = threading.Lock()

    def load(self, path: Path) -> paramiko.PKey:
        with self._lock:
            if path not in self._keys:
                self._keys[path] = _read_private_key(path)
            return self._keys[path]


def _read_private_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(str(path))
    except paramiko.PasswordRequiredException:
        raise InputError(
            f"{path}: the key is passphrase-protected; add it to ssh-agent (ssh-add {path}) "
            "and leave identity_file out"
        ) from None
    except (OSError, paramiko.SSHException, ValueError) as error:
        raise InputError(f"{path}: cannot load private key: {error}") from None


class AeadFirstTransport(paramiko.Transport):
    """paramiko's Transport offering AES-GCM first, as OpenSSH does with its AEAD ciphers.

    paramiko's default, aes128-ctr with hmac-sha2-256, checks every packet's MAC with a pure-Python
    constant-time loop: a fifth of a run's CPU on 50 hosts. GCM authenticates inside the
    cipher (OpenSSL). Servers without it still get the CTR and CBC ciphers that follow.
    """

    _preferred_ciphers = tuple(sorted(paramiko.Transport._preferred_ciphers, key=lambda name: "-gcm@" not in name))
    disconnect_reason: str | None = None

    def _parse_disconnect(self, m: paramiko.Message) -> None:
        # paramiko only logs the server's SSH_MSG_DISCONNECT; kept for the "connection lost" error.
        code, description = m.get_int(), m.get_text()
        self.disconnect_reason = f"the server disconnected: {description} (code {code})"
        m.rewind()
        super()._parse_disconnect(m)


class ConnectionFactory:
    """What every connection of a run shares: trusted keys, private keys, bastion connections."""

    def __init__(self, settings: SshSettings, known_hosts: KnownHosts | None = None) -> None:
        self.settings = settings
        self.known_hosts = known_hosts or KnownHosts(settings.known_hosts, settings.host_key_policy)
        self.private_keys = PrivateKeys()
        self._gateways: dict[Endpoint, paramiko.SSHClient] = {}
        self._gateway_lock = threading.Lock()
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)

    def connect(self, host: Host, log: HostLog | None = None) -> SshConnection:
        """An open, verified connection to `host`; raises HostUnreachable when it cannot be had."""
        connection = SshConnection(host, self, log or HostLog(None))
        connection.open()
        return connection

    def open_connection(self, endpoint: Endpoint, via: Endpoint | None = None) -> paramiko.SSHClient:
        """A client connected to `endpoint` (through bastion `via` if given), its host key verified.

        Retried with jittered backoff on connection failures; not on authentication failures or
        host key problems, which a retry cannot fix.
        """
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return self._open_once(endpoint, self.gateway(via) if via else None)
            except _BastionRefused as refused:
                if attempt == CONNECT_ATTEMPTS:
                    raise HostUnreachable(
                        f"cannot reach {endpoint.address}:{endpoint.port} through bastion {via}: "
                        f"{mask(refused.reason)} ({_attempts(attempt)})"
                    ) from None
            except (OSError, EOFError, paramiko.SSHException) as error:
                if isinstance(error, paramiko.AuthenticationException) or attempt == CONNECT_ATTEMPTS:
                    raise _unreachable(endpoint, error, attempt) from None
            delay = RETRY_BASE_DELAY * 2 ** (attempt - 1)
            time.sleep(delay + random.uniform(0, delay))
        raise AssertionError("unreachable")

    def _open_once(self, endpoint: Endpoint, gateway: paramiko.SSHClient | None) -> paramiko.SSHClient:
        # The bastion, if any, is already open (its own handshake took and gave back a slot).
        with self._handshakes:
            return self._handshake(endpoint, gateway)

    def _handshake(self, endpoint: Endpoint, gateway: paramiko.SSHClient | None) -> paramiko.SSHClient:
        connect_kwargs = self._connect_kwargs(endpoint)
        if gateway is None:
            connect_kwargs["sock"] = _tcp_connect(endpoint, self.settings.connect_timeout)
        else:
            connect_kwargs["sock"] = self._through(gateway, endpoint)
        client = paramiko.SSHClient()
        self.known_hosts.guard(client, endpoint.address, endpoint.port)
        try:
            client.connect(endpoint.address, port=endpoint.port, username=endpoint.user, **connect_kwargs)
        except paramiko.BadHostKeyException as error:
            client.close()
            name = known_hosts_name(endpoint.address, endpoint.port)
            raise HostKeyMismatch(
                f"{endpoint.address}:{endpoint.port}: host key changed: known_hosts has "
                f"{error.expected_key.get_name()} {error.expected_key.fingerprint}, the server sent "
                f"{error.key.fingerprint}; possibly a man-in-the-middle. If the server was "
                f"reinstalled: ssh-keygen -R '{name}' -f {self.known_hosts.path}"
            ) from None
        except BaseException:
            client.close()
            raise
        return client

    def _through(self, gateway: paramiko.SSHClient, endpoint: Endpoint) -> paramiko.Channel:
        """A direct-tcpip channel from bastion `gateway` to `endpoint` (ProxyJump), for the host's SSH."""
        transport = gateway.get_transport()
        try:
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("the connection to the bastion was lost")
            return transport.open_channel("direct-tcpip", (endpoint.address, endpoint.port), ("", 0),
                                          timeout=self.settings.connect_timeout)
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise _BastionRefused(str(error) or type(error).__name__) from None

    def _connect_kwargs(self, endpoint: Endpoint) -> dict:
        """paramiko's connect() arguments: the run's loaded key (or ssh-agent), and every timeout."""
        pkey = self.private_keys.load(endpoint.identity_file) if endpoint.identity_file else None
        timeout = self.settings.connect_timeout
        return {
            "pkey": pkey,
            "look_for_keys": False,
            "allow_agent": pkey is None,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            # Bounds opening sessions and (on a bastion) direct-tcpip channels: paramiko's
            # default is an hour.
            "channel_timeout": timeout,
            "transport_factory": AeadFirstTransport,
        }

    def gateway(self, endpoint: Endpoint) -> paramiko.SSHClient:
        """The open connection to bastion `endpoint`: one per bastion, shared by the hosts behind it."""
        with self._gateway_lock:
            client = self._gateways.get(endpoint)
            transport = client.get_transport() if client else None
            if transport is None or not transport.is_active():
                client = self.open_connection(endpoint)
                self._gateways[endpoint] = client
            return client

    def close(self) -> None:
        with self._gateway_lock:
            for client in self._gateways.values():
                client.close()
            self._gateways.clear()


class _BastionRefused(Exception):
    """The bastion would not open a channel to the host (internal: becomes HostUnreachable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tcp_connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    sock = socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    # Without TCP_NODELAY every command waits out a delayed ACK: 48 ms instead of 3 ms per
    # command on the lab (paramiko leaves Nagle on).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _unreachable(endpoint: Endpoint, error: BaseException, attempts: int) -> HostUnreachable:
    if isinstance(error, paramiko.AuthenticationException):
        key = endpoint.identity_file or "ssh-agent keys"
        return HostUnreachable(
            f"{endpoint}: authentication failed with {key}: check user and identity_file"
        )
    reason = str(error) or type(error).__name__
    if isinstance(error, (socket.timeout, TimeoutError)):
        reason = "timed out"
    return HostUnreachable(f"cannot connect to {endpoint}: {mask(reason)} ({_attempts(attempts)})")


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


class ParamikoLog(logging.Handler):
    """What paramiko's reader thread says about one connection (warnings and errors: a socket error,
    a message for a channel it does not know, after which it drops the connection without raising),
    in that host's log instead of on stderr; the last error also ends the "connection lost" line."""

    def __init__(self, host_name: str, log: HostLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.last_error: str | None = None
        # Named after the host, not the connection: loggers are never freed, hosts are finite.
        self.logger = logging.getLogger(f"ispagent.ssh.{host_name}")
        self.logger.propagate = False

    def attach(self, transport: paramiko.Transport) -> None:
        self.logger.addHandler(self)
        transport.set_log_channel(self.logger.name)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _one_line(record.getMessage(), 300)
            if record.levelno >= logging.ERROR and not message.startswith("Traceback"):
                self.last_error = message
            self.log.write("!", f"ssh: {message}")
        except Exception:  # never in paramiko's reader thread: it would take the connection down
            pass

    def detach(self) -> None:
        self.logger.removeHandler(self)


class SshConnection:
    """An open SSH connection to one host. Not shared between threads: one per host per run."""

    def __init__(self, host: Host, factory: ConnectionFactory, log: HostLog) -> None:
        self.host = host
        self.factory = factory
        self.log = log
        self.client: paramiko.SSHClient | None = None  # connected and verified; None once closed
        self.paramiko_log = ParamikoLog(host.name, log)
        self._shell: HostShell | None = None  # opened by the first command

    def open(self) -> None:
        self.client = self.factory.open_connection(self.host.endpoint, self.host.gateway)
        self.paramiko_log.attach(self.client.get_transport())

    def close(self) -> None:
        self._drop_shell()
        if self.client is not None:
            self.client.close()
        self.client = None
        self.paramiko_log.detach()

    def run(
        self,
        command: str | Sequence[str],
        *,
        sudo: bool | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
        log_output: bool = True,
    ) -> CommandResult:
        """Run `command` (a shell line, or argv to be quoted) and wait for its exit status.

        With sudo (the host's `sudo` setting by default) it runs as root through `sudo -n`.
        """
        line = remote_line(command, self.host.sudo if sudo is None else sudo)
        self.log.write("$", line)
        timeout = timeout or self.factory.settings.command_timeout
        status, out, err = self._exec(line, timeout, stdin)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if log_output:
            self.log.write("|", stdout)
            self.log.write("!", stderr)
        self.log.write("=", f"exit {status}")
        return CommandResult(mask(line), status, stdout, stderr)

    def _exec(self, line: str, timeout: float, stdin: bytes | None) -> tuple[int, bytes, bytes]:
        transport = self._transport()
        deadline = time.monotonic() + timeout
        if stdin is not None and len(stdin) > STDIN_LIMIT:
            return self._exec_on_session(transport, line, deadline, stdin)
        try:
            if self._shell is None:
                self._shell = HostShell(transport, self.factory.settings.connect_timeout)
            return self._shell.run(line, stdin, deadline)
        except ShellTimedOut:
            self._drop_shell()
            raise CommandTimeout(f"command timed out: {_one_line(mask(line))}") from None
        except ShellEnded as ended:
            self._drop_shell()
            if not transport.is_active():
                raise self._lost(transport, " while running a command") from None
            # The shell itself was killed (the command's fate is its own): a failed command, and
            # the next command gets a new shell.
            return -1, ended.out, ended.err
        except (paramiko.SSHException, OSError, EOFError) as error:
            self._drop_shell()
            raise HostUnreachable(f"{self.host.name}: connection lost: {error or type(error).__name__}") from None

    def _drop_shell(self) -> None:
        """Close the host shell, if any: the next command opens a new one."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def _exec_on_session(self, transport: paramiko.Transport, line: str, deadline: float,
                         stdin: bytes | None) -> tuple[int, bytes, bytes]:
        """`line` on a session of its own, `stdin` streamed to it: for data too large to carry through the shell."""
        try:
            channel = transport.open_session(timeout=self.factory.settings.connect_timeout)
            channel.exec_command(line)
            if stdin is not None:
                _send_stdin(channel, stdin)
            channel.shutdown_write()
            status, out, err = _collect(channel, deadline, mask(line))
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise HostUnreachable(f"{self.host.name}: connection lost: {error or type(error).__name__}") from None
        if status == -1 and not transport.is_active():
            # paramiko closes the channels of a dead connection with exit status -1: the command's
            # fate is unknown, so this is a lost connection (resumable), not a command that failed.
            # (-1 on a live connection is a command killed by a signal: a real failure.)
            raise self._lost(transport, " while running a command")
        return status, out, err

    def _transport(self) -> paramiko.Transport:
        # Checked before every use: a dead connection is reported (the host is resumable), never reopened.
        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise self._lost(transport)
        return transport

    def _lost(self, transport: paramiko.Transport | None, during: str = "") -> HostUnreachable:
        """The error for this host's dead connection, with what ended it when anything said so."""
        return HostUnreachable(f"{self.host.name}: connection lost{during}{_why_closed(transport, self.paramiko_log.last_error)}")

    def put(self, data: bytes, path: str, mode: int = 0o644, *, make_parents: bool = False) -> None:
        """Write `data` to `path` atomically (temp file beside it + rename), as root via sudo if needed.

        One command with the bytes on its stdin: the staging file is created 0600 (never readable
        by others, even for a moment), given `mode`, and renamed over `path`. Bytes beyond the
        host shell's STDIN_LIMIT go on a session of their own, streamed. With
        `make_parents`, missing parent directories are created first (under the usual umask).
        SFTP took a session per host plus five round trips per file (open, write, close, chmod,
        rename); a sudo host needed a staging file in /tmp and an `install` command as well.
        """
        self.log.write("$", f"put {path} ({len(data)} bytes, mode {mode:o})")
        line = remote_line(put_script(path, mode, make_parents), self.host.sudo)
        status, _, err = self._exec(line, self.factory.settings.command_timeout, data)
        self.log.write("=", f"exit {status}")
        if status != 0:
            reason = CommandResult(mask(line), status, "", err.decode(errors="replace")).error_line()
            raise TransportError(f"{self.host.name}: upload to {path} failed: {reason}")


def _why_closed(transport: paramiko.Transport | None, paramiko_said: str | None = None) -> str:
    """What ended a dead transport, as its reader thread saw it (": the server closed the connection")."""
    reason = getattr(transport, "disconnect_reason", None)
    if reason:
        return f": {mask(_one_line(reason))}"
    error = transport.get_exception() if transport is not None else None
    if error is None:
        return f": {mask(paramiko_said)}" if paramiko_said else ""
    if isinstance(error, EOFError):
        return ": the server closed the connection"
    return f": {mask(str(error) or type(error).__name__)}"


def _send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
    except OSError:
        # The command closed its end before reading everything (it failed early, e.g. a missing
        # directory): its exit status and stderr say why. Only a dead connection is lost.
        if not channel.get_transport().is_active():
            raise


def staging_path(path: str) -> str:
    """A fresh name beside `path` to write to before renaming over it (same directory: same file system)."""
    return f"{path}.ispagent-{uuid.uuid4().hex[:8]}"


def store_stdin(staging: str, mode: int) -> str:
    """The shell words that store stdin in the new file `staging` (quoted) with exactly `mode`.

    One process: coreutils' `install` creates the file 0600 with O_EXCL (never readable by others
    while it fills, never through a symlink planted at the name) and then sets `mode` itself,
    whatever the umask or a default ACL would have made of it. `cat >` plus `chmod` in a subshell
    took three processes, a fifth of a small upload's cost on the host.
    """
    return f"umask 077 && install -m {stat.S_IMODE(mode):o} -T /dev/stdin {staging}"


def put_script(path: str, mode: int, make_parents: bool = False) -> str:
    """The shell line that stores its stdin at `path` with `mode`, atomically; leaves no staging file behind.

    `mv -T`: a directory at `path` is an error, not a place to move the file into.
    """
    dest = command_line([path])
    staging = command_line([staging_path(path)])
    mkdir = f"mkdir -p -- {command_line([posixpath.dirname(path)])} && " if make_parents else ""
    return f"{mkdir}{store_stdin(staging, mode)} && mv -fT -- {staging} {dest} || {{ rm -f -- {staging}; exit 1; }}"


def _one_line(command: str, limit: int = 120) -> str:
    """A command as one short line for an error message: a multi-line script becomes its words."""
    words = " ".join(command.split())
    return words if len(words) <= limit else words[: limit - 3] + "..."


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
            raise CommandTimeout(f"command timed out: {_one_line(shown)}")
        if not drained:
            selector.select(min(remaining, 0.5))
    status = channel.recv_exit_status()
    channel.close()
    return status, bytes(out), bytes(err)
