"""SSH transport on paramiko: one verified connection per host, reused for all of a run's steps.

paramiko directly rather than fabric's `Connection`: fabric installs AutoAddPolicy on every client
(unknown host keys accepted silently) and runs each command through invoke's runner threads; we
need strict host keys, and the bare client is what testinfra's paramiko backend can reuse.
"""

from __future__ import annotations

import posixpath
import random
import select
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
from agent.transport.hostlog import HostLog

CONNECT_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.5
_READ_CHUNK = 65536


def command_line(argv: Sequence[str]) -> str:
    """One shell command line from `argv`, every word quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(word)) for word in argv)


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


class ConnectionFactory:
    """What every connection of a run shares: trusted keys, private keys, bastion connections."""

    def __init__(self, settings: SshSettings, known_hosts: KnownHosts | None = None) -> None:
        self.settings = settings
        self.known_hosts = known_hosts or KnownHosts(settings.known_hosts, settings.host_key_policy)
        self.private_keys = PrivateKeys()
        self._gateways: dict[Endpoint, paramiko.SSHClient] = {}
        self._gateway_lock = threading.Lock()

    def connect(self, host: Host, log: HostLog | None = None) -> SshConnection:
        """An open, verified connection to `host`; raises HostUnreachable when it cannot be had."""
        connection = SshConnection(host, self, log or HostLog(None))
        connection.open()
        return connection

    def open_client(self, endpoint: Endpoint, sock=None) -> paramiko.SSHClient:
        """A verified, authenticated client for `endpoint`, retried on connection failures only."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return self._open_client_once(endpoint, sock)
            except (OSError, EOFError, paramiko.SSHException) as error:
                if isinstance(error, paramiko.AuthenticationException) or sock is not None:
                    raise _unreachable(endpoint, error, attempt) from None
                if attempt == CONNECT_ATTEMPTS:
                    raise _unreachable(endpoint, error, attempt) from None
            delay = RETRY_BASE_DELAY * 2 ** (attempt - 1)
            time.sleep(delay + random.uniform(0, delay))
        raise AssertionError("unreachable")

    def _open_client_once(self, endpoint: Endpoint, sock) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        name = known_hosts_name(endpoint.address, endpoint.port)
        trusted = client.get_host_keys()
        for key_type, key in self.known_hosts.keys_for(name).items():
            trusted.add(name, key_type, key)
        client.set_missing_host_key_policy(self.known_hosts.missing_key_policy())
        pkey = self.private_keys.load(endpoint.identity_file) if endpoint.identity_file else None
        timeout = self.settings.connect_timeout
        if sock is None:
            sock = _tcp_connect(endpoint, timeout)
        try:
            client.connect(
                endpoint.address,
                port=endpoint.port,
                username=endpoint.user,
                pkey=pkey,
                sock=sock,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                look_for_keys=False,
                allow_agent=pkey is None,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
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

    def tunnel(self, gateway: Endpoint, target: Endpoint) -> paramiko.Channel:
        """A direct-tcpip channel through `gateway` (one shared connection per bastion)."""
        with self._gateway_lock:
            client = self._gateways.get(gateway)
            if client is None or not client.get_transport() or not client.get_transport().is_active():
                client = self.open_client(gateway)
                self._gateways[gateway] = client
        try:
            return client.get_transport().open_channel(
                "direct-tcpip",
                (target.address, target.port),
                ("127.0.0.1", 0),
                timeout=self.settings.connect_timeout,
            )
        except (paramiko.SSHException, OSError) as error:
            raise HostUnreachable(
                f"cannot reach {target.address}:{target.port} through bastion {gateway}: {error}"
            ) from None

    def close(self) -> None:
        with self._gateway_lock:
            for client in self._gateways.values():
                client.close()
            self._gateways.clear()


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
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return HostUnreachable(f"cannot connect to {endpoint}: {mask(reason)} ({tries})")


class SshConnection:
    """An open SSH connection to one host. Not shared between threads: one per host per run."""

    def __init__(self, host: Host, factory: ConnectionFactory, log: HostLog) -> None:
        self.host = host
        self.factory = factory
        self.log = log
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def open(self) -> None:
        sock = None
        if self.host.gateway is not None:
            sock = self.factory.tunnel(self.host.gateway, self.host.endpoint)
        self.client = self.factory.open_client(self.host.endpoint, sock)

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self.client is not None:
            self.client.close()
        self._sftp = None
        self.client = None

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
        line = command if isinstance(command, str) else command_line(command)
        if self.host.sudo if sudo is None else sudo:
            line = command_line(["sudo", "-n", "--", "sh", "-c", line])
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
        try:
            channel = transport.open_session(timeout=self.factory.settings.connect_timeout)
            channel.exec_command(line)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            return _collect(channel, time.monotonic() + timeout, mask(line))
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise HostUnreachable(f"{self.host.name}: connection lost: {error or type(error).__name__}") from None

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise HostUnreachable(f"{self.host.name}: connection lost")
        return transport

    def put(self, data: bytes, path: str, mode: int = 0o644, *, make_parents: bool = False) -> None:
        """Write `data` to `path` atomically over SFTP (temp file + rename), as root via sudo if needed.

        With `make_parents`, missing parent directories are created (over SFTP: no extra process).
        """
        self.log.write("$", f"put {path} ({len(data)} bytes, mode {mode:o})")
        staging = f"{path}.ispagent-{uuid.uuid4().hex[:8]}"
        if self.host.sudo:
            staging = f"/tmp/ispagent-{uuid.uuid4().hex}"
        try:
            sftp = self._sftp_client()
            if make_parents and not self.host.sudo:
                _sftp_makedirs(sftp, posixpath.dirname(path))
            with sftp.open(staging, "wb") as remote:
                remote.set_pipelined(True)
                remote.write(data)
            sftp.chmod(staging, stat.S_IMODE(mode))
            if self.host.sudo:
                install = ["install", "-D"] if make_parents else ["install"]
                result = self.run([*install, "-m", f"{mode:o}", staging, path], sudo=True)
                sftp.remove(staging)
                if not result.ok:
                    raise TransportError(f"{self.host.name}: cannot install {path}: {result.error_line()}")
            else:
                sftp.posix_rename(staging, path)
        except (OSError, paramiko.SSHException) as error:
            raise TransportError(f"{self.host.name}: upload to {path} failed: {error}") from None

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp


def _sftp_makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    missing = []
    while directory not in ("", "/"):
        try:
            sftp.stat(directory)
            break
        except FileNotFoundError:
            missing.append(directory)
            directory = posixpath.dirname(directory)
    for path in reversed(missing):
        sftp.mkdir(path, 0o755)


def _collect(channel: paramiko.Channel, deadline: float, shown: str) -> tuple[int, bytes, bytes]:
    out, err = bytearray(), bytearray()
    fd = channel.fileno()
    while True:
        drained = False
        while channel.recv_ready():
            out += channel.recv(_READ_CHUNK)
            drained = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(_READ_CHUNK)
            drained = True
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            if channel.closed or channel.eof_received:
                break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            channel.close()
            raise CommandTimeout(f"command timed out: {shown[:200]}")
        if not drained:
            select.select([fd], [], [], min(remaining, 0.5))
    status = channel.recv_exit_status()
    channel.close()
    return status, bytes(out), bytes(err)
