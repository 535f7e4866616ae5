"""The keys a host without identity_file is offered, as ssh: the files ssh config names for it, else
~/.ssh's default key files, read once per run."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from agent.transport.privatekeys import PrivateKeys


def _keygen(path: Path, kind: str, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path)], check=True)


@pytest.fixture
def ssh_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    return tmp_path / ".ssh"


def test_default_keys_are_read_in_sshs_order_and_a_locked_one_is_left_to_the_agent(ssh_dir):
    _keygen(ssh_dir / "id_ed25519", "ed25519")
    _keygen(ssh_dir / "id_rsa", "rsa", passphrase="secret")
    _keygen(ssh_dir / "id_ecdsa", "ecdsa")
    found = PrivateKeys().defaults()
    assert [path.name for path, _ in found.loaded] == ["id_ecdsa", "id_ed25519"]
    assert [type(key) for _, key in found.loaded] == [paramiko.ECDSAKey, paramiko.Ed25519Key]
    assert found.locked == (ssh_dir / "id_rsa",)
    assert found.describe() == (
        "ssh-agent keys and ~/.ssh/id_ecdsa, ~/.ssh/id_ed25519 (~/.ssh/id_rsa needs its passphrase: add it to ssh-agent)"
    )


def test_a_default_file_that_is_no_key_or_no_file_is_passed_over(ssh_dir):
    (ssh_dir / "id_rsa").write_text("not a key\n")
    (ssh_dir / "id_rsa").chmod(0o600)
    (ssh_dir / "id_ecdsa").mkdir()
    found = PrivateKeys().defaults()
    assert (found.loaded, found.locked) == ((), ())
    assert found.describe() == "ssh-agent keys only (no ~/.ssh/id_rsa, id_ecdsa or id_ed25519)"


def test_key_files_named_by_ssh_config_are_read_in_its_order_once_per_run(ssh_dir, tmp_path):
    keys_dir = tmp_path / "keys"  # under HOME (tmp_path): shown as ~/keys/...
    keys_dir.mkdir()
    _keygen(keys_dir / "work", "ed25519")
    _keygen(keys_dir / "locked", "ecdsa", passphrase="secret")
    _keygen(keys_dir / "personal", "ecdsa")
    _keygen(ssh_dir / "id_ed25519", "ed25519")  # a default key: not offered once ssh config names keys
    keys = PrivateKeys()
    named = (keys_dir / "personal", keys_dir / "locked", keys_dir / "work")
    found = keys.named(named)
    assert [path.name for path, _ in found.loaded] == ["personal", "work"]
    assert found.locked == (keys_dir / "locked",)
    assert keys.named(named) is found
    assert found.describe() == (
        "ssh-agent keys and ~/keys/personal, ~/keys/work (~/keys/locked needs its passphrase: add it to ssh-agent)"
    )
    # IdentitiesOnly: ssh-agent's keys are not offered, but for its copy of a named key that needs a
    # passphrase, found by the key's public half (its .pub file, or OpenSSH's unencrypted header).
    assert found.describe(agent=False) == (
        "~/keys/personal, ~/keys/work only (IdentitiesOnly yes; ~/keys/locked needs its passphrase: add it to ssh-agent)"
    )
    public = (keys_dir / "locked.pub").read_text().split()[1]
    assert found.locked_public == (base64.b64decode(public),)
    (keys_dir / "locked.pub").unlink()
    assert PrivateKeys().named(named).locked_public == (base64.b64decode(public),)


def test_a_locked_key_whose_public_half_cannot_be_read_says_so_under_identities_only(ssh_dir, tmp_path):
    # PEM (PKCS#1) encrypts the public half with the rest: without the .pub file nothing tells which
    # of ssh-agent's keys is its copy.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secret", "-f", str(tmp_path / "old")],
        check=True,
    )
    (tmp_path / "old.pub").unlink()
    found = PrivateKeys().named((tmp_path / "old",))
    assert (found.locked, found.locked_public) == ((tmp_path / "old",), ())
    assert found.describe(agent=False) == (
        "no key (IdentitiesOnly yes; ~/old needs its passphrase, and without its .pub file its copy in ssh-agent cannot be found)"
    )


def test_default_keys_are_read_once_per_run(ssh_dir):
    _keygen(ssh_dir / "id_ed25519", "ed25519")
    keys = PrivateKeys()
    first = keys.defaults()
    (ssh_dir / "id_ed25519").unlink()
    assert keys.defaults() is first
    assert PrivateKeys().defaults().loaded == ()  # the next run reads the directory again


@pytest.mark.parametrize("kind", ["passphrase", "not-a-key"])
def test_a_run_whose_identity_file_cannot_be_loaded_is_refused_in_one_line(tmp_path, kind):
    """Before: every host failed with "internal error: TypeError" (paramiko passes cryptography's
    TypeError through for a protected key) or with the InputError's class name, exit 1."""
    key = tmp_path / "key"
    if kind == "passphrase":
        _keygen(key, "ed25519", passphrase="secret")
    else:
        key.write_text("not a key\n")
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "inventory.yaml").write_text(
        f"ssh: {{known_hosts: {tmp_path / 'known_hosts'}}}\n"
        f"defaults: {{user: root, identity_file: {key}}}\nhosts:\n  web1: {{address: 127.0.0.1, port: 9}}\n"
    )
    (tmp_path / "job.yaml").write_text("name: job\nsteps:\n  - shell: {command: 'true'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", "job.yaml", "-i", "inventory.yaml", "--ssh-config", "/dev/null"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    expected = (
        "the key is passphrase-protected; add it to ssh-agent" if kind == "passphrase" else "cannot load private key"
    )
    [line] = done.stderr.splitlines()
    assert line.startswith(f"ispagent: error: {key}: {expected}")


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o640, 0o604, 0o644, 0o660, 0o602])
@pytest.mark.parametrize("owner", ["self", "another user"])
def test_a_default_key_others_may_read_is_ignored_exactly_when_ssh_ignores_it(ssh_dir, mode, owner):
    """OpenSSH's own rule, with ssh-keygen -y (it loads a private key as ssh does) as the oracle: a key
    file of this user's that its group or others may read or write is ignored; another user's is not."""
    key = ssh_dir / "id_ed25519"
    _keygen(key, "ed25519")
    if owner == "another user":
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(key, 65534, 65534)
    key.chmod(mode)
    ssh_uses_it = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True).returncode == 0
    found = PrivateKeys().defaults()
    assert bool(found.loaded) == ssh_uses_it
    assert found.too_open == (() if ssh_uses_it else (key,))
    if not ssh_uses_it:
        assert "others may read ~/.ssh/id_ed25519, so ssh ignores it" in found.describe()
