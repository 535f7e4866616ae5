"""Host key trust: one known_hosts file parsed once per run and shared by every connection.

Strict by default: an unknown host is refused, a changed key is refused. `accept-new` (opt-in)
records a host seen for the first time, like OpenSSH's StrictHostKeyChecking=accept-new, and still
refuses a changed key. Nothing is ever accepted silently.

OpenSSH's markers: a key on a `@revoked` line is refused from any host, whatever else the file or the
policy says (OpenSSH refuses it from the hosts the line names; refusing it everywhere is stricter). A
`@cert-authority` line trusts host certificates, which ispagent does not check: it is passed over, so
a host known only through its CA is an unknown host. paramiko reads neither marker.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path

import paramiko

from agent.atomicfile import write_atomic
from agent.errors import HostKeyMismatch, InputError, UnknownHostKey


def known_hosts_name(address: str, port: int) -> str:
    """The name a host is filed under in known_hosts (`[addr]:port` off port 22, as OpenSSH does)."""
    return address if port == 22 else f"[{address}]:{port}"


def forget_hosts(path: Path, names: set[str]) -> int:
    """Drop from the known_hosts file `path` the lines of hosts filed under `names` (plain, not hashed
    names, as ispagent writes them); return how many were dropped. A missing file has none."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if not _names_of(line) & names]
    if len(kept) < len(lines):
        write_atomic(path, "".join(kept), path.stat().st_mode & 0o777, durable=False)
    return len(lines) - len(kept)


def _names_of(line: str) -> set[str]:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return set()
    first = fields[1] if fields[0].startswith("@") and len(fields) > 1 else fields[0]  # @cert-authority, @revoked
    return set(first.split(","))


def changed_key(
    address: str, port: int, expected: paramiko.PKey, sent: paramiko.PKey, path: Path | None
) -> HostKeyMismatch:
    """The error for a server whose key is not the one known_hosts has for it, with the fix."""
    name = known_hosts_name(address, port)
    return HostKeyMismatch(
        f"{address}:{port}: host key changed: known_hosts has {expected.get_name()} {expected.fingerprint}, "
        f"the server sent {sent.fingerprint}; possibly a man-in-the-middle. If the server was "
        f"reinstalled: ssh-keygen -R '{name}' -f {path}"
    )


class KnownHosts:
    """The trusted host keys of a run, loaded once, safe to share between threads."""

    def __init__(self, path: Path | None, policy: str = "strict") -> None:
        self.path = path
        self.policy = policy
        self._lock = threading.Lock()
        # Host name -> key type -> key. paramiko's HostKeys reads every entry for each lookup (and
        # for each line it loads): with a thousand hosts, a millisecond a host and a second to load.
        self._by_name: dict[str, dict[str, paramiko.PKey]] = {}
        # A file with hashed names (`|1|...`, which only an HMAC per entry can match) is looked up
        # entry by entry, in file order, as paramiko's lookup does; the table is not built for it.
        self._entries: list[paramiko.hostkeys.HostKeyEntry] = []
        self._hashed = False
        self.revoked: frozenset[tuple[str, str]] = frozenset()  # (key type, base64) of @revoked keys
        if path is not None and path.exists():
            try:
                entries, revoked = _entries(path)
            except OSError as error:
                raise InputError(f"{path}: cannot read known_hosts: {error.strerror or error}") from None
            self.revoked = frozenset(revoked)
            self._entries = [entry for entry in entries if not self.is_revoked(entry.key)]
            self._hashed = any(name.startswith("|1|") for entry in self._entries for name in entry.hostnames)
            if not self._hashed:
                self._by_name = _table(self._entries)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked

    def keys_for(self, name: str) -> dict[str, paramiko.PKey]:
        with self._lock:
            if not self._hashed:
                return dict(self._by_name.get(name, {}))
            found: dict[str, paramiko.PKey] = {}
            for entry in self._entries:
                if any(_names_match(name, filed) for filed in entry.hostnames):
                    found.setdefault(entry.key.get_name(), entry.key)
            return found

    def missing_key_policy(self) -> paramiko.MissingHostKeyPolicy:
        return _AcceptNew(self) if self.policy == "accept-new" else _RefuseUnknown(self)

    def guard(self, client: paramiko.SSHClient, address: str, port: int) -> None:
        """Make `client` check the server's key against this run's keys and policy before it connects.

        The client gets only the keys of this one host (no file re-read), and the run's policy for
        a key it does not know, in place of whatever policy it had (fabric, for one, sets
        AutoAddPolicy: any key accepted, silently).
        """
        name = known_hosts_name(address, port)
        trusted = client.get_host_keys()
        for key_type, key in self.keys_for(name).items():
            trusted.add(name, key_type, key)
        client.set_missing_host_key_policy(self.missing_key_policy())

    def remember(self, name: str, key: paramiko.PKey) -> None:
        """Record a first-seen key in memory and append it to the file (accept-new only)."""
        with self._lock:
            self._by_name.setdefault(name, {})[key.get_name()] = key
            self._entries.append(paramiko.hostkeys.HostKeyEntry([name], key))
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = f"{name} {key.get_name()} {key.get_base64()}\n"
            # O_APPEND keeps concurrent writers (other runs) from interleaving inside a line.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def _entries(path: Path) -> tuple[list[paramiko.hostkeys.HostKeyEntry], list[tuple[str, str]]]:
    """The file's host key entries, read line by line as paramiko's HostKeys.load reads them (a line
    it cannot parse, or with a key type it does not know, is passed over; a key that is not base64
    is refused), and the keys of its `@revoked` lines. Other marked lines are passed over."""
    entries, revoked = [], []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            marker, _, rest = line.partition(" ") if line.startswith("@") else ("", "", line)
            if marker not in ("", "@revoked"):
                continue  # @cert-authority: host certificates, not checked here
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(rest.strip(), number)
            except paramiko.SSHException:
                continue
            except paramiko.hostkeys.InvalidHostKey:  # paramiko's load raises it too
                raise InputError(
                    f"{path}: line {number}: the key is not valid base64; fix or delete the line"
                ) from None
            if entry is None or entry.key is None:
                continue
            if marker:
                revoked.append((entry.key.get_name(), entry.key.get_base64()))
            else:
                entries.append(entry)
    return entries, revoked


def _table(entries: list[paramiko.hostkeys.HostKeyEntry]) -> dict[str, dict[str, paramiko.PKey]]:
    """Host name -> key type -> key; the first key of a type wins, as in paramiko's lookup."""
    table: dict[str, dict[str, paramiko.PKey]] = {}
    for entry in entries:
        for name in entry.hostnames:
            table.setdefault(name, {}).setdefault(entry.key.get_name(), entry.key)
    return table


def _names_match(name: str, filed: str) -> bool:
    """Whether the known_hosts name `filed` (plain, or hashed `|1|salt|hash`) is `name`."""
    if not filed.startswith("|1|"):
        return filed == name
    return hmac.compare_digest(paramiko.HostKeys.hash_host(name, filed), filed)


def revoked_key(hostname: str, key: paramiko.PKey, path: Path | None) -> HostKeyMismatch:
    return HostKeyMismatch(
        f"{hostname}: host key {key.get_name()} {key.fingerprint} is revoked (@revoked in {path}); the "
        "server must be given a new host key, and known_hosts that one"
    )


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known: KnownHosts) -> None:
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.known.is_revoked(key):
            raise revoked_key(hostname, key, self.known.path)
        where = self.known.path or "no known_hosts file"
        raise UnknownHostKey(
            f"{hostname}: host key ({key.get_name()}) is not in {where}; add it "
            "(ssh-keyscan, or the lab's known_hosts), or opt in with --host-key-policy accept-new"
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    def __init__(self, known: KnownHosts) -> None:
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.known.is_revoked(key):
            raise revoked_key(hostname, key, self.known.path)
        self.known.remember(hostname, key)
