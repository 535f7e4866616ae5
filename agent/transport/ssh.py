"""SSH transport on paramiko: one verified connection per host, reused for all of a run's steps.

Each connection is a paramiko client with the run's host key policy (hostkeys.py), reaching the
host directly, through a direct-tcpip channel of its bastion's connection (a chain of them for
ProxyJump a,b: each hop's host key checked like any host's), or over a ProxyCommand (proxysocket.py).
A host without either costs nothing more than it did before gateways existed. fabric's `Connection`
did this once: it cost 3-4 ms of CPU per host in invoke's configuration merges (a fifth of the
control node's CPU on 50 hosts), and its shared configuration was not thread-safe.
Commands run in one long-lived /bin/sh on a session of that connection's transport (executors.py),
not through fabric's `Connection.run`: invoke's runner starts I/O threads and polls every 10 ms for
each command. 500 commands on 50 lab hosts at once took 0.41-0.58 s through the
host shell, 1.30-1.64 s on a session each and 2.01-2.31 s through fabric (bench/command_runner.py,
three rounds). Uploads are commands too (the bytes as the command's data): no SFTP session.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import paramiko

from agent.errors import (
    HostUnreachable,
    TransportError,
)
from agent.inventory.model import Endpoint, Host, SshSettings
from agent.secrets import mask
from agent.transport.base import CommandResult
from agent.transport.dialing import MAX_HANDSHAKES, DialedSockets, tcp_connect
from agent.transport.executors import CommandExecutor, ConnectionLost, HostShellExecutor, one_line
from agent.transport.filewrite import put_script
from agent.transport.hostkeys import KnownHosts, changed_key, revoked_key
from agent.transport.hostlog import HostLog
from agent.transport.hostshell import with_data_on_stdin
from agent.transport.privatekeys import KeyFiles, PrivateKeys
from agent.transport.proxysocket import ProxyCommandSocket
from agent.transport.quoting import remote_line

# A failed handshake is one line in the error that ends the host (and the connection's log once it
# is open: ParamikoLog); without a handler, Python's last resort prints paramiko's traceback of it.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.5


class AeadFirstTransport(paramiko.Transport):
    """paramiko's Transport offering AES-GCM first, as OpenSSH does with its AEAD ciphers.

    paramiko's default, aes128-ctr with hmac-sha2-256, checks every packet's MAC with a pure-Python
    constant-time loop: a fifth of a run's CPU on 50 hosts. GCM authenticates inside the
    cipher (OpenSSL). Servers without it still get the CTR and CBC ciphers that follow.
    """

    _preferred_ciphers = tuple(
        sorted(
            paramiko.Transport._preferred_ciphers,  # type: ignore[attr-defined]  # private
            key=lambda name: "-gcm@" not in name,
        )
    )
    # paramiko's transport thread wakes every 0.1 s while its connection is idle (to notice a close):
    # with a thread per host that is 10 000 wake-ups a second over 1 000 hosts, each taking the GIL
    # from the threads doing work. Nothing here waits on that poll: close() (below) ends the socket
    # without waiting for the thread, and the banner and handshake keep their own deadlines.
    _active_check_timeout = 1.0
    disconnect_reason: str | None = None

    def close(self) -> None:
        # paramiko closes the socket while its thread still waits in poll() on it, and the kernel
        # ends the TCP connection only when that poll returns, up to the poll interval above.
        # Shutting the socket down first ends it now (the server's sshd exits) and wakes the thread.
        if self.is_active() and isinstance(self.sock, socket.socket):
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone: close() below is all that is left
        super().close()

    def _parse_disconnect(self, m: paramiko.Message) -> None:
        # paramiko only logs the server's SSH_MSG_DISCONNECT; kept for the "connection lost" error.
        code, description = m.get_int(), m.get_text()
        self.disconnect_reason = f"the server disconnected: {description} (code {code})"
        m.rewind()
        super()._parse_disconnect(m)  # type: ignore[misc]  # paramiko's private handler, not in its stubs


class SshConnector:
    """Opens a run's SSH connections; what they share: trusted keys, private keys, bastion connections."""

    def __init__(
        self, settings: SshSettings, known_hosts: KnownHosts | None = None, *, dialed: DialedSockets | None = None
    ) -> None:
        """`dialed`: TCP connections already under way to some hosts (dialing.py); theirs are used
        first, and those never taken are closed with the connector."""
        self.settings = settings
        self.dialed = dialed
        self.known_hosts = known_hosts or KnownHosts(settings.known_hosts, settings.host_key_policy)
        self.private_keys = PrivateKeys()
        self._gateways: dict[Endpoint, paramiko.SSHClient] = {}
        # Reentrant: opening a jump host opens the hop before it (ProxyJump a,b) under the same lock.
        self._gateway_lock = threading.RLock()
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)

    def load_identity_files(self, hosts: Iterable[Host]) -> None:
        """Read the identity_file of `hosts` and of the jump hosts in front of them now, each once.

        One that is no key, or needs a passphrase, refuses the run here, in one line (InputError),
        rather than failing every host that uses it; and no worker waits for another's first load.
        """
        endpoints = (endpoint for host in hosts for endpoint in (*host.jump_hosts(), host.endpoint))
        for path in dict.fromkeys(endpoint.identity_file for endpoint in endpoints if endpoint.identity_file):
            self.private_keys.load(path)

    def executor(self) -> CommandExecutor:
        """How a new connection of this connector runs its commands (a host shell: see executors.py)."""
        return HostShellExecutor(self.settings.connect_timeout)

    def connect(self, host: Host, log: HostLog | None = None) -> SshConnection:
        """An open, verified connection to `host`; raises HostUnreachable when it cannot be had."""
        log = log or HostLog(None)
        client = self.open_connection(host.endpoint, host.gateway)
        return SshConnection(host, client, log, self.settings, executor=self.executor())

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
                denied = _denied(error)
                if denied or attempt == CONNECT_ATTEMPTS:
                    raise _unreachable(endpoint, error, attempt, self._offered(endpoint)) from None
            delay = RETRY_BASE_DELAY * 2 ** (attempt - 1)
            time.sleep(delay + random.uniform(0, delay))
        raise AssertionError("unreachable")

    def _open_once(self, endpoint: Endpoint, gateway: paramiko.SSHClient | None) -> paramiko.SSHClient:
        # The bastion, if any, is already open (its own handshake took and gave back a slot).
        with self._handshakes:
            return self._handshake(endpoint, gateway)

    def _handshake(self, endpoint: Endpoint, gateway: paramiko.SSHClient | None) -> paramiko.SSHClient:
        if endpoint.proxy_command is not None:
            return self._handshake_over_command(endpoint, endpoint.proxy_command)
        connect_kwargs = self._connect_kwargs(endpoint)
        if gateway is None:
            connect_kwargs["sock"] = self._dialed(endpoint) or tcp_connect(endpoint, self.settings.connect_timeout)
        else:
            connect_kwargs["sock"] = self._through(gateway, endpoint)
        return self._verified_client(endpoint, connect_kwargs)

    def _dialed(self, endpoint: Endpoint) -> socket.socket | None:
        return self.dialed.take(endpoint, self.settings.connect_timeout) if self.dialed is not None else None

    def _handshake_over_command(self, endpoint: Endpoint, command_line: str) -> paramiko.SSHClient:
        """The SSH handshake over a ProxyCommand; its failure says what the command did (exit status, stderr)."""
        connect_kwargs = self._connect_kwargs(endpoint)
        sock = connect_kwargs["sock"] = ProxyCommandSocket(command_line)
        try:
            return self._verified_client(endpoint, connect_kwargs)
        except BaseException as error:
            # paramiko's Transport.close() leaves the socket of a handshake that failed alone.
            sock.close()
            hung = sock.received == 0 and sock.ended_running
            if isinstance(error, paramiko.AuthenticationException) or not isinstance(
                error, (OSError, EOFError, paramiko.SSHException)
            ):
                raise
            if hung:
                raise ProxyCommandFailed(
                    f"no SSH server answered through the ProxyCommand within {self.settings.connect_timeout:g} s"
                ) from None
            raise ProxyCommandFailed(sock.failure(str(error) or type(error).__name__)) from None

    def _verified_client(self, endpoint: Endpoint, connect_kwargs: dict[str, Any]) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        self.known_hosts.guard(client, endpoint.address, endpoint.port)
        agent_copy, agent = self._agent_copy(endpoint)
        try:
            client.connect(
                endpoint.address, port=endpoint.port, username=endpoint.user, **{**connect_kwargs, **agent_copy}
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            if self.known_hosts.is_revoked(error.key):
                raise revoked_key(f"{endpoint.address}:{endpoint.port}", error.key, self.known_hosts.path) from None
            raise changed_key(
                endpoint.address, endpoint.port, error.expected_key, error.key, self.known_hosts.path
            ) from None
        except BaseException:
            client.close()
            raise
        finally:
            if agent is not None:
                agent.close()  # its key signed during the handshake, and is not needed after it
        return client

    def _agent_copy(self, endpoint: Endpoint) -> tuple[dict[str, Any], paramiko.Agent | None]:
        """Under IdentitiesOnly, ssh-agent's copy of a named key file that needs its passphrase, as ssh
        offers it: connect() arguments that offer it first (the files that loaded after it, by name)
        and the agent to close after the handshake. Nothing without such a key, or an agent holding it.
        """
        if endpoint.identity_file or not endpoint.identities_only:
            return {}, None
        files = self._key_files(endpoint)
        if not files.locked_public:
            return {}, None
        try:
            agent = paramiko.Agent()  # one per connection: its socket serves one request at a time
            copy = next((key for key in agent.get_keys() if key.asbytes() in files.locked_public), None)
        except (OSError, paramiko.SSHException):
            return {}, None
        if copy is None:
            agent.close()
            return {}, None
        return _offering(files.loaded, first=copy), agent

    def _through(self, gateway: paramiko.SSHClient, endpoint: Endpoint) -> paramiko.Channel:
        """A direct-tcpip channel from bastion `gateway` to `endpoint` (ProxyJump), for the host's SSH."""
        transport = gateway.get_transport()
        try:
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("the connection to the bastion was lost")
            return transport.open_channel(
                "direct-tcpip", (endpoint.address, endpoint.port), ("", 0), timeout=self.settings.connect_timeout
            )
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise _BastionRefused(str(error) or type(error).__name__) from None

    def _connect_kwargs(self, endpoint: Endpoint) -> dict[str, Any]:
        """paramiko's connect() arguments: the run's loaded keys (agent/transport/privatekeys.py), and
        every timeout."""
        timeout = self.settings.connect_timeout
        return {
            **self._keys_for(endpoint),
            "look_for_keys": False,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            # Bounds opening sessions and (on a bastion) direct-tcpip channels: paramiko's
            # default is an hour.
            "channel_timeout": timeout,
            "transport_factory": AeadFirstTransport,
        }

    def _keys_for(self, endpoint: Endpoint) -> dict[str, Any]:
        """The host's identity_file alone; without one, as ssh: the key files ssh config names for it
        (else the default ones), then ssh-agent's keys unless IdentitiesOnly.

        paramiko takes one loaded key (tried first); further files it reads itself, by name.
        """
        if endpoint.identity_file:
            return {"pkey": self.private_keys.load(endpoint.identity_file), "allow_agent": False}
        return {**_offering(self._key_files(endpoint).loaded), "allow_agent": not endpoint.identities_only}

    def _key_files(self, endpoint: Endpoint) -> KeyFiles:
        if endpoint.ssh_config_keys:
            return self.private_keys.named(endpoint.ssh_config_keys)
        return self.private_keys.defaults()

    def _offered(self, endpoint: Endpoint) -> str:
        if endpoint.identity_file:
            return str(endpoint.identity_file)
        return self._key_files(endpoint).describe(agent=not endpoint.identities_only)

    def gateway(self, endpoint: Endpoint) -> paramiko.SSHClient:
        """The open connection to bastion `endpoint`: one per bastion, shared by the hosts behind it."""
        with self._gateway_lock:
            client = self._gateways.get(endpoint)
            transport = client.get_transport() if client else None
            if client is None or transport is None or not transport.is_active():
                client = self.open_connection(endpoint, endpoint.via)
                self._gateways[endpoint] = client
            return client

    def close(self) -> None:
        if self.dialed is not None:
            self.dialed.close()
        with self._gateway_lock:
            for client in self._gateways.values():
                close_client(client)
            self._gateways.clear()


class ProxyCommandFailed(paramiko.SSHException):
    """The handshake over a ProxyCommand failed; the message says what the command did (retried like a
    refused TCP connection, then HostUnreachable)."""


def close_client(client: paramiko.SSHClient) -> None:
    """Close `client` and end the ProxyCommand under it, if any: paramiko leaves it running once the
    connection has died on its own."""
    transport = client.get_transport()
    client.close()
    sock = getattr(transport, "sock", None)
    if isinstance(sock, ProxyCommandSocket):
        sock.close()


class _BastionRefused(Exception):
    """The bastion would not open a channel to the host (internal: becomes HostUnreachable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _auth_timed_out(error: BaseException) -> bool:
    """paramiko's AuthenticationException for no answer within auth_timeout: a slow or overloaded
    server (a thousand handshakes on two cores), not a refused key; retried like a timeout."""
    return isinstance(error, paramiko.AuthenticationException) and str(error) == "Authentication timeout."


def _offering(loaded: Sequence[tuple[Path, paramiko.PKey]], first: paramiko.PKey | None = None) -> dict[str, Any]:
    """paramiko's connect() arguments offering `first` (else the first loaded file's key), then the
    loaded files: it takes one loaded key, and reads further files itself, by name."""
    if first is None and loaded:
        first, loaded = loaded[0][1], loaded[1:]
    return {"pkey": first, "key_filename": [str(path) for path, _ in loaded] or None}


def _nothing_offered(error: BaseException) -> bool:
    """paramiko's plain SSHException when it had no key to offer at all (no key given or found, an
    empty or absent ssh-agent): a refusal a retry cannot change, not a connection failure."""
    return type(error) is paramiko.SSHException and str(error) == "No authentication methods available"


def _denied(error: BaseException) -> bool:
    return (isinstance(error, paramiko.AuthenticationException) and not _auth_timed_out(error)) or _nothing_offered(
        error
    )


def _unreachable(endpoint: Endpoint, error: BaseException, attempts: int, offered: str) -> HostUnreachable:
    """The host's one-line error; `offered` says which keys it was offered."""
    if _auth_timed_out(error):
        return HostUnreachable(
            f"cannot connect to {endpoint}: no answer to authentication in time ({_attempts(attempts)})"
        )
    if _denied(error):
        return HostUnreachable(f"{endpoint}: authentication failed with {offered}: check user and identity_file")
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
            message = one_line(record.getMessage(), 300)
            if record.levelno >= logging.ERROR and not message.startswith("Traceback"):
                self.last_error = message
            self.log.write("!", f"ssh: {message}")
        except Exception:  # never in paramiko's reader thread: it would take the connection down
            pass

    def detach(self) -> None:
        self.logger.removeHandler(self)


class SshConnection:
    """An open SSH connection to one host. Not shared between threads: one per host per run.

    Made by SshConnector.connect, or around a paramiko client someone else opened and verified
    (`adopt`: a Fabric Connection's client, say); `executor` decides how its commands run.
    """

    def __init__(
        self,
        host: Host,
        client: paramiko.SSHClient,
        log: HostLog | None = None,
        settings: SshSettings = SshSettings(),
        *,
        executor: CommandExecutor | None = None,
        owns_client: bool = True,
    ) -> None:
        self.host = host
        self.client: paramiko.SSHClient | None = client  # connected and verified; None once closed
        self.log = log or HostLog(None)
        self.settings = settings
        self.executor = executor or HostShellExecutor(settings.connect_timeout)
        self.owns_client = owns_client
        self.paramiko_log = ParamikoLog(host.name, self.log)
        transport = client.get_transport()
        if transport is not None:
            self.paramiko_log.attach(transport)

    @classmethod
    def adopt(
        cls,
        host: Host,
        client: paramiko.SSHClient,
        log: HostLog | None = None,
        settings: SshSettings = SshSettings(),
        *,
        executor: CommandExecutor | None = None,
    ) -> SshConnection:
        """A connection over `client`, already connected and its host key already verified by its
        owner, who also closes it: close() here only ends what this connection opened on it."""
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise HostUnreachable(f"{host.name}: the SSH client to adopt is not connected")
        return cls(host, client, log, settings, executor=executor, owns_client=False)

    def close(self) -> None:
        self.executor.close()
        if self.client is not None and self.owns_client:
            close_client(self.client)
        self.client = None
        self.paramiko_log.detach()

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

        With sudo (the host's `sudo` setting by default) it runs as root through `sudo -n`.
        """
        line, stdin, data = _remote_command(command, self.host.sudo if sudo is None else sudo, stdin, data)
        self.log.write("$", line)
        status, out, err = self.execute(line, timeout or self.settings.command_timeout, stdin, data)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if log_output:
            self.log.write("|", stdout)
            self.log.write("!", stderr)
        self.log.write("=", f"exit {status}")
        return CommandResult(mask(line), status, stdout, stderr)

    def execute(
        self, line: str, timeout: float, stdin: bytes | None = None, data: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of the shell line `line`, unlogged, through the executor."""
        transport = self._transport()
        try:
            return self.executor.execute(transport, line, stdin, time.monotonic() + timeout, data)
        except ConnectionLost as lost:
            if lost.detail:
                raise HostUnreachable(f"{self.host.name}: connection lost: {lost.detail}") from None
            raise self._lost(transport, " while running a command") from None

    def _transport(self) -> paramiko.Transport:
        # Checked before every use: a dead connection is reported (the host is resumable), never reopened.
        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise self._lost(transport)
        return transport

    def _lost(self, transport: paramiko.Transport | None, during: str = "") -> HostUnreachable:
        """The error for this host's dead connection, with what ended it when anything said so."""
        return HostUnreachable(
            f"{self.host.name}: connection lost{during}{_why_closed(transport, self.paramiko_log.last_error)}"
        )

    def put(self, data: bytes, path: str, mode: int = 0o644, *, make_parents: bool = False) -> None:
        """Write `data` to `path` atomically (temp file beside it + rename), as root via sudo if needed.

        One command with the bytes as its data (filewrite.py): the staging file is created 0600
        (never readable by others, even for a moment), given `mode`, and renamed over `path`. Bytes
        beyond the host shell's STDIN_LIMIT go on a session of their own, streamed. With
        `make_parents`, missing parent directories are created first (under the usual umask).
        SFTP took a session per host plus five round trips per file (open, write, close, chmod,
        rename); a sudo host needed a staging file in /tmp and an `install` command as well.
        """
        self.log.write("$", f"put {path} ({len(data)} bytes, mode {mode:o})")
        line, stdin, given = _remote_command(put_script(path, mode, make_parents), self.host.sudo, None, data)
        status, _, err = self.execute(line, self.settings.command_timeout, stdin, given)
        self.log.write("=", f"exit {status}")
        if status != 0:
            reason = CommandResult(mask(line), status, "", err.decode(errors="replace")).error_line()
            raise TransportError(f"{self.host.name}: upload to {path} failed: {reason}")


def _remote_command(
    command: str | Sequence[str], sudo: bool, stdin: bytes | None, data: bytes | None
) -> tuple[str, bytes | None, bytes | None]:
    """The line the host's shell gets for `command`, and what goes on its stdin and as its data."""
    if data is not None and stdin is not None:
        raise ValueError("a command is given its bytes on stdin or as its data, not both")
    if data is not None and sudo:
        # sudo's shell is a new process, out of the host shell's reach: the data goes on its stdin.
        return remote_line(with_data_on_stdin(remote_line(command, False)), sudo), data, None
    return remote_line(command, sudo), stdin, data


def _why_closed(transport: paramiko.Transport | None, paramiko_said: str | None = None) -> str:
    """What ended a dead transport, as its reader thread saw it (": the server closed the connection")."""
    reason = getattr(transport, "disconnect_reason", None)
    if reason:
        return f": {mask(one_line(reason))}"
    error = transport.get_exception() if transport is not None else None
    if error is None:
        return f": {mask(paramiko_said)}" if paramiko_said else ""
    if isinstance(error, EOFError):
        return ": the server closed the connection"
    return f": {mask(str(error) or type(error).__name__)}"
