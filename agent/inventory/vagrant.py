"""Inventory YAML from `vagrant ssh-config`, so a local Vagrant lab can be rolled out like a fleet.

Vagrant reports each machine as a `Host` block reached through a forwarded port on 127.0.0.1,
with a per-machine private key. Only Host, HostName, User, Port and IdentityFile matter here;
Vagrant's other options (StrictHostKeyChecking no, UserKnownHostsFile /dev/null, ...) are replaced
by the inventory's own host key policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from agent.errors import InputError
from agent.inventory.addresses import PORT_TEXT
from agent.secrets import shown

VAGRANT_DEFAULT_PORT = 22
_KEYWORD_VALUE = re.compile(r"^(\S+?)(?:\s*=\s*|\s+|$)(.*)$")


@dataclass(frozen=True)
class VagrantMachine:
    name: str
    address: str
    port: int
    user: str
    identity_file: str | None


def parse_vagrant_ssh_config(text: str, source: str = "<stdin>") -> list[VagrantMachine]:
    """The machines of a `vagrant ssh-config` output, in order. `source` names it in errors."""
    blocks: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        keyword, value = _split(line)
        if not keyword:
            continue
        if keyword == "host" and not value:
            raise InputError(f"{source}:{number}: Host without a machine name")
        if keyword == "host":
            blocks.append({"host": value, "line": str(number)})
        elif not blocks:
            problem = f"{shown(keyword)} before any Host line; is this `vagrant ssh-config` output?"
            raise InputError(f"{source}:{number}: {problem}")
        else:
            blocks[-1].setdefault(keyword, value)  # ssh semantics: the first value wins
    if not blocks:
        raise InputError(f"{source}: no Host entries; pipe in the output of `vagrant ssh-config`")
    return [_machine(block, source) for block in blocks]


def _split(line: str) -> tuple[str, str]:
    """`Keyword value` (or `Keyword=value`) as a lowercase keyword and an unquoted value."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return "", ""
    keyword, value = _KEYWORD_VALUE.match(stripped).groups()
    # Vagrant quotes paths with spaces (common on Windows and macOS home folders).
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return keyword.lower(), value


def _machine(block: dict[str, str], source: str) -> VagrantMachine:
    port = block.get("port", str(VAGRANT_DEFAULT_PORT))
    if not PORT_TEXT.fullmatch(port):  # isdigit() also takes '²', which int() then refuses
        raise InputError(f"{source}:{block['line']}: Host {block['host']}: Port {shown(port)} is not a number")
    return VagrantMachine(
        name=block["host"],
        address=block.get("hostname", block["host"]),
        port=int(port),
        user=block.get("user", "vagrant"),
        identity_file=block.get("identityfile"),
    )


def vagrant_inventory_yaml(machines: list[VagrantMachine], *, known_hosts: str, domain: str | None = None) -> str:
    """Inventory YAML text for `machines`, ready for `ispagent inventory check`.

    Vagrant boxes get fresh host keys on every `vagrant up`, so the inventory trusts new keys on
    first contact (accept-new) and keeps them in a lab-only `known_hosts` file, away from the
    operator's real one. With `domain`, each machine gets `vars.fqdn` = `<name>.<domain>`.
    """
    hosts = {machine.name: _host_entry(machine, domain) for machine in machines}
    document = {"ssh": {"known_hosts": known_hosts, "host_key_policy": "accept-new"}, "hosts": hosts}
    header = (
        "# Made by `ispagent inventory from-vagrant` from `vagrant ssh-config`.\n"
        "# Set the ISPmanager vars before a rollout, e.g. under a defaults: key:\n"
        "#   defaults:\n"
        "#     vars: {edition: lite, period: monthly, release: stable}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def _host_entry(machine: VagrantMachine, domain: str | None) -> dict[str, object]:
    entry: dict[str, object] = {"address": machine.address, "port": machine.port, "user": machine.user}
    if machine.identity_file:
        entry["identity_file"] = machine.identity_file
    if domain:
        entry["vars"] = {"fqdn": f"{machine.name}.{domain.strip('.')}"}
    return entry
