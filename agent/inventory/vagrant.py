"""Inventory YAML from `vagrant ssh-config`, so a local Vagrant lab can be rolled out like a fleet.

Vagrant reports each machine as a `Host` block reached through a forwarded port on 127.0.0.1,
with a per-machine private key. Only Host, HostName, User, Port and IdentityFile matter here;
Vagrant's other options (StrictHostKeyChecking no, UserKnownHostsFile /dev/null, ...) are replaced
by the inventory's own host key policy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.atomicfile import write_atomic
from agent.errors import InputError
from agent.inventory.addresses import PORT_TEXT, is_address
from agent.inventory.loader import check_made_inventory, is_valid_name, is_valid_user
from agent.secrets import shown
from agent.yamlnodes import read_yaml_file

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
    """The machines of a `vagrant ssh-config` output, in order. `source` names it in errors.

    Each value is checked as the inventory will check it, so what from-vagrant writes passes
    `inventory check`: a name, address, port or user the inventory would refuse is refused here,
    with the line it is on.
    """
    blocks: list[dict[str, tuple[str, int]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        keyword, value = _split(line)
        if not keyword:
            continue
        if keyword == "host" and not value:
            raise InputError(f"{source}:{number}: Host without a machine name")
        if keyword == "host":
            blocks.append({"host": (value, number)})
        elif not blocks:
            problem = f"{shown(keyword)} before any Host line; is this `vagrant ssh-config` output?"
            raise InputError(f"{source}:{number}: {problem}")
        else:
            blocks[-1].setdefault(keyword, (value, number))  # ssh semantics: the first value wins
    if not blocks:
        raise InputError(f"{source}: no Host entries; pipe in the output of `vagrant ssh-config`")
    machines: dict[str, VagrantMachine] = {}
    for block in blocks:
        machine = _machine(block, source)
        if machine.name in machines:
            first = next(b["host"][1] for b in blocks if b["host"][0] == machine.name)
            raise InputError(
                f"{source}:{block['host'][1]}: Host {shown(machine.name)} appears twice (first on line "
                f"{first}); an inventory names each host once"
            )
        machines[machine.name] = machine
    return list(machines.values())


def _split(line: str) -> tuple[str, str]:
    """`Keyword value` (or `Keyword=value`) as a lowercase keyword and an unquoted value."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return "", ""
    matched = _KEYWORD_VALUE.match(stripped)
    if matched is None:  # not reached: the pattern matches any line that starts with a non-space
        return "", ""
    keyword, value = matched.groups()
    # Vagrant quotes paths with spaces (common on Windows and macOS home folders).
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return keyword.lower(), value


def _machine(block: dict[str, tuple[str, int]], source: str) -> VagrantMachine:
    name, line = block["host"]
    where = f"{source}:{line}: Host {shown(name)}"
    if not is_valid_name(name):
        raise InputError(f"{where}: not a host name an inventory takes; use letters, digits, '.', ':', '_' and '-'")
    port, line = block.get("port", (str(VAGRANT_DEFAULT_PORT), line))
    if not PORT_TEXT.fullmatch(port) or not 1 <= int(port) <= 65535:  # isdigit() also takes '²', which int() refuses
        raise InputError(f"{source}:{line}: Host {shown(name)}: Port {shown(port)} is not a port number (1-65535)")
    address, line = block.get("hostname", (name, line))
    if not is_address(address):
        raise InputError(
            f"{source}:{line}: Host {shown(name)}: HostName {shown(address)} is not an IP address or DNS name"
        )
    user, line = block.get("user", ("vagrant", line))
    if not is_valid_user(user):
        raise InputError(f"{source}:{line}: Host {shown(name)}: User {shown(user)} is not a valid user name")
    identity_file = block.get("identityfile", (None, 0))[0]
    if identity_file and not identity_file.startswith("~"):
        # Vagrant writes absolute paths; a relative one is relative to where `vagrant ssh-config`
        # ran, not to wherever the inventory is saved.
        identity_file = os.path.abspath(identity_file)
    return VagrantMachine(name=name, address=address, port=int(port), user=user, identity_file=identity_file or None)


def vagrant_inventory_yaml(
    machines: list[VagrantMachine],
    *,
    known_hosts: str,
    domain: str | None = None,
    defaults_vars: dict[str, object] | None = None,
) -> str:
    """Inventory YAML text for `machines`, ready for `ispagent inventory check`.

    Vagrant boxes get fresh host keys on every `vagrant up`, so the inventory trusts new keys on
    first contact (accept-new) and keeps them in a lab-only `known_hosts` file, away from the
    operator's real one. With `domain`, each machine gets `vars.fqdn` = `<name>.<domain>`;
    `defaults_vars` (e.g. a Vagrant docker lab's vars.yaml) go under `defaults.vars`.
    """
    hosts = {machine.name: _host_entry(machine, domain) for machine in machines}
    document: dict[str, object] = {"ssh": {"known_hosts": known_hosts, "host_key_policy": "accept-new"}}
    if defaults_vars:
        document["defaults"] = {"vars": dict(defaults_vars)}
    document["hosts"] = hosts
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


check_vagrant_inventory = check_made_inventory  # from-vagrant's name for it


def read_vars_file(path: Path) -> dict[str, object]:
    """The YAML mapping of vars in `path` (`--vars`), read as inventories are (no tags, aliases
    bounded, duplicate keys refused); anything else is one line naming the file and line."""
    root = read_yaml_file(path, InputError, what="vars file")
    if not root.is_mapping:
        raise root.error("a vars file is a YAML mapping of names to values, like vars: in an inventory")
    return {name: node.value() for name, node in root.mapping().items()}


def write_inventory_file(path: Path, text: str) -> None:
    """Write the inventory whole or not at all (also when killed); a path that cannot be written is one line."""
    try:
        write_atomic(path, text, durable=False)
    except OSError as problem:
        raise InputError(f"{path}: cannot write the inventory: {problem.strerror or problem}") from None
