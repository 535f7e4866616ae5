"""Files in the lab directory that let clients reach the hosts: key, known_hosts, ssh_config,
inventory. Every file is written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from agent.atomicfile import write_scratch_file
from agent.lab import services
from agent.lab.host import HostPaths, LabHost
from agent.lab.keys import generate_ed25519
from agent.lab.profiles import login_user

IDENTITY_FILE = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
SSH_CONFIG = "ssh_config"
INVENTORY = "inventory.yaml"
CLIENT_FILES = (IDENTITY_FILE, f"{IDENTITY_FILE}.pub", KNOWN_HOSTS, SSH_CONFIG, INVENTORY)
DEFAULT_VARS = "{edition: lite, period: monthly, release: stable}"


def ensure_client_key(lab_dir: Path) -> str:
    """Create the lab's client key pair unless it exists; return the public key line."""
    private, public = lab_dir / IDENTITY_FILE, lab_dir / f"{IDENTITY_FILE}.pub"
    if not (private.exists() and public.exists()):
        key = generate_ed25519(f"ispagent-lab@{lab_dir.name}")
        write_scratch_file(private, key.private_openssh.decode(), 0o600)
        write_scratch_file(public, key.public_openssh + "\n")
    return public.read_text().strip()


def write_client_files(lab_dir: Path, hosts: Sequence[LabHost], bridge_address: str) -> None:
    """known_hosts (from the hosts' generated public keys), ssh_config and inventory.yaml (which points
    at the services on the lab's `bridge_address`)."""
    write_scratch_file(lab_dir / KNOWN_HOSTS, known_hosts(lab_dir, hosts))
    write_scratch_file(lab_dir / SSH_CONFIG, ssh_config(lab_dir, hosts))
    write_scratch_file(lab_dir / INVENTORY, inventory(hosts, services.inventory_vars(lab_dir, bridge_address)))


def known_hosts(lab_dir: Path, hosts: Sequence[LabHost]) -> str:
    lines = []
    for host in hosts:
        key_type, key = HostPaths.of(lab_dir, host.name).host_public_key.read_text().split()[:2]
        lines.append(f"{host.address} {key_type} {key}\n")
    return "".join(lines)


def ssh_config(lab_dir: Path, hosts: Sequence[LabHost]) -> str:
    """For `ssh -F DIR/ssh_config h1`. Paths are absolute: ssh resolves them from its cwd."""
    blocks = []
    for host in hosts:
        blocks.append(
            f"Host {host.name} {host.fqdn}\n"
            f"    HostName {host.address}\n"
            f"    User {login_user(host.profile)}\n"
            f"    IdentityFile {lab_dir / IDENTITY_FILE}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {lab_dir / KNOWN_HOSTS}\n"
            "    StrictHostKeyChecking yes\n"
        )
    return "\n".join(blocks)


def inventory(hosts: Sequence[LabHost], service_vars: dict[str, str] | None = None) -> str:
    """The lab as an ispagent inventory; its paths are relative to the inventory file."""
    defaults = DEFAULT_VARS
    if service_vars:
        defaults = (
            DEFAULT_VARS[:-1] + "".join(f", {key}: {json.dumps(value)}" for key, value in service_vars.items()) + "}"
        )
    lines = [
        "ssh:",
        f"  known_hosts: {KNOWN_HOSTS}",
        "  host_key_policy: strict",
        "defaults:",
        "  user: root",
        f"  identity_file: {IDENTITY_FILE}",
        f"  vars: {defaults}",
        "hosts:",
    ]
    for host in hosts:
        lines += [
            f"  {host.name}:",
            f"    address: {host.address}",
            f"    vars: {{fqdn: {host.fqdn}}}",
        ]
        if login_user(host.profile) != "root":
            lines += [f"    user: {login_user(host.profile)}", "    sudo: false"]
    return "\n".join(lines) + "\n"


def remove_client_files(lab_dir: Path) -> None:
    for name in CLIENT_FILES:
        (lab_dir / name).unlink(missing_ok=True)
