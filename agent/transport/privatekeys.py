"""The private keys a run authenticates with: read once per run, whatever the number of hosts.

A host with an `identity_file` uses that key alone. A host without one uses what `ssh` would: the
key files ssh config names for it (IdentityFile), or else the default key files of ~/.ssh, then the
keys of ssh-agent unless ssh config says IdentitiesOnly. A scheduled job usually has no ssh-agent;
with the agent alone it could not log in where `ssh host`, run by the same user, does. paramiko's
connect() takes one loaded key: a second or third key file is handed to it by name, and it reads
that file again for each connection (ssh.py, `_keys_for`).
"""

from __future__ import annotations

import base64
import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.pkey import PublicBlob

from agent.errors import InputError

# The files ssh tries when no IdentityFile is named (ssh_config(5)), in its order, of the key types
# paramiko reads (not the security-key "_sk" types, nor DSA, which paramiko no longer reads).
DEFAULT_KEY_NAMES = ("id_rsa", "id_ecdsa", "id_ed25519")


@dataclass(frozen=True)
class KeyFiles:
    """The key files ssh would try for a host without identity_file (its IdentityFile entries in ssh
    config, or the default ones): those loaded, those left to ssh-agent (their passphrase), and those
    ignored as ssh ignores them (others may read them). `named`: ssh config named them."""

    loaded: tuple[tuple[Path, paramiko.PKey], ...]
    locked: tuple[Path, ...]
    too_open: tuple[Path, ...]
    named: bool = False
    # The public keys of `locked` that could be read: under IdentitiesOnly, ssh-agent's copies of
    # those keys, and only those, are offered (ssh.py, `_agent_copy`), as ssh offers them.
    locked_public: tuple[bytes, ...] = ()

    def describe(self, agent: bool = True) -> str:
        """What a host without identity_file was offered, for an authentication error; `agent`:
        with ssh-agent's keys (ssh config's IdentitiesOnly leaves them out)."""
        files = ", ".join(_home_relative(path) for path, _ in self.loaded)
        if agent:
            offered = "ssh-agent keys " + (f"and {files}" if files else "only")
        else:
            offered = f"{files} only" if files else "no key"
        notes = [] if agent else ["IdentitiesOnly yes"]
        if self.locked:
            locked = ", ".join(_home_relative(path) for path in self.locked)
            one = len(self.locked) == 1
            needs = f"{locked} {'needs its' if one else 'need their'} passphrase"
            if agent or len(self.locked_public) == len(self.locked):
                notes.append(f"{needs}: add {'it' if one else 'them'} to ssh-agent")
            else:  # IdentitiesOnly: an agent key is offered only as the copy of a named file's public key
                notes.append(
                    f"{needs}, and without {'its' if one else 'their'} .pub {'file' if one else 'files'} "
                    f"{'its copy' if one else 'their copies'} in ssh-agent cannot be found"
                )
        if self.too_open:
            too_open = " ".join(_home_relative(path) for path in self.too_open)
            it = "it" if len(self.too_open) == 1 else "them"
            notes.append(f"others may read {too_open}, so ssh ignores {it} and so did this run: chmod 600 {too_open}")
        if not self.loaded and not self.locked and not self.too_open and not self.named:
            notes.append(f"no ~/.ssh/{', '.join(DEFAULT_KEY_NAMES[:-1])} or {DEFAULT_KEY_NAMES[-1]}")
        return offered + (f" ({'; '.join(notes)})" if notes else "")


class PrivateKeys:
    """Private keys loaded once per run, whatever the number of hosts that use them."""

    def __init__(self) -> None:
        self._keys: dict[Path, paramiko.PKey] = {}
        self._files: dict[tuple[Path, ...], KeyFiles] = {}
        self._lock = threading.Lock()

    def load(self, path: Path) -> paramiko.PKey:
        with self._lock:
            if path not in self._keys:
                self._keys[path] = _read_private_key(path)
            return self._keys[path]

    def defaults(self) -> KeyFiles:
        """The default key files of ~/.ssh, read at the first call (see `named`)."""
        return self._read_once(tuple(Path.home() / ".ssh" / name for name in DEFAULT_KEY_NAMES), named=False)

    def named(self, paths: tuple[Path, ...]) -> KeyFiles:
        """The key files ssh config names for a host (IdentityFile), read at the first call.

        As ssh in batch mode: a passphrase-protected key is not used from its file (ssh-agent may
        hold it), a file of this user's that others may read is ignored ("UNPROTECTED PRIVATE KEY
        FILE"), and a file that is no key, or cannot be read, is passed over.
        """
        return self._read_once(paths, named=True)

    def _read_once(self, paths: tuple[Path, ...], named: bool) -> KeyFiles:
        with self._lock:
            if paths not in self._files:
                self._files[paths] = _read_key_files(paths, named)
            return self._files[paths]


def _read_key_files(paths: tuple[Path, ...], named: bool) -> KeyFiles:
    loaded, locked, too_open = [], [], []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            continue
        if not stat.S_ISREG(status.st_mode):
            continue
        if status.st_uid == os.getuid() and status.st_mode & 0o077:
            too_open.append(path)
            continue
        try:
            loaded.append((path, _load(path)))
        except _NeedsPassphrase:
            locked.append(path)
        except (OSError, paramiko.SSHException, ValueError, TypeError):
            continue
    public = (_public_key(path) for path in locked)
    return KeyFiles(tuple(loaded), tuple(locked), tuple(too_open), named, tuple(blob for blob in public if blob))


_OPENSSH_MAGIC = b"openssh-key-v1\0"


def _public_key(path: Path) -> bytes | None:
    """The public key of passphrase-protected key file `path`, as ssh finds it without the passphrase:
    `path.pub` (ssh-keygen writes it beside the key), else the public part that OpenSSH's own format
    keeps unencrypted. None when neither tells."""
    try:
        blob: bytes = PublicBlob.from_file(f"{path}.pub").key_blob  # checks the type the line names too
        return blob
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    try:
        lines = path.read_text().strip().splitlines()
        data = base64.b64decode("".join(lines[1:-1]), validate=True)
        if not data.startswith(_OPENSSH_MAGIC):  # PEM (PKCS#1, PKCS#8): the public key is encrypted too
            return None
        header = paramiko.Message(data[len(_OPENSSH_MAGIC) :])
        for _ in ("cipher", "KDF", "KDF options"):
            header.get_string()
        return header.get_binary() if header.get_int() >= 1 else None
    except (OSError, ValueError, UnicodeDecodeError, paramiko.SSHException, struct.error):
        return None


def _read_private_key(path: Path) -> paramiko.PKey:
    try:
        return _load(path)
    except _NeedsPassphrase:
        raise InputError(
            f"{path}: the key is passphrase-protected; add it to ssh-agent (ssh-add {path}) and leave identity_file out"
        ) from None
    except (OSError, paramiko.SSHException, ValueError, TypeError) as error:
        raise InputError(f"{path}: cannot load private key: {error}") from None


class _NeedsPassphrase(Exception):
    pass


def _load(path: Path) -> paramiko.PKey:
    """The key in file `path`; _NeedsPassphrase when it is passphrase-protected."""
    try:
        return paramiko.PKey.from_path(str(path))
    except paramiko.PasswordRequiredException:
        raise _NeedsPassphrase from None
    except TypeError as error:
        # paramiko passes cryptography's TypeError through for a protected key in OpenSSH's format
        # (ssh-keygen's default): "Key is password-protected, but password was not provided."
        if "password" in str(error).lower():
            raise _NeedsPassphrase from None
        raise


def _home_relative(path: Path) -> str:
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)
