"""Inventory YAML from an Ansible inventory (INI or YAML, with group_vars/ and host_vars/).

Read with ansible-core's own parser (the optional extra: `pip install 'ispagent[ansible]'`), so
every quirk of Ansible's formats (ranges like web[1:9], :children, :vars, vars plugins) means what
it means to Ansible. Each host's vars are Ansible's merged vars for it; the ones every host shares
go to `defaults.vars`. The connection vars ispagent has a key for become that key; every other
`ansible_*` var is reported (by name: it may be a password) and left out, never dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InputError
from agent.userpath import expand_home

ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user", "ansible_remote_user")
KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")
BECOME_VARS = ("ansible_become", "ansible_become_method", "ansible_become_user")
MAPPED = (*ADDRESS_VARS, *PORT_VARS, *USER_VARS, *KEY_VARS, *BECOME_VARS, "ansible_connection")
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f", "")


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    vars: dict[str, Any]  # Ansible's merged vars for the host (magic vars left out)


@dataclass(frozen=True)
class AnsibleGroup:
    name: str
    children: tuple[str, ...]
    hosts: tuple[str, ...]  # direct members


@dataclass(frozen=True)
class Conversion:
    text: str  # inventory YAML
    hosts: int
    notes: tuple[str, ...]  # what was left out, and why


def read_ansible_inventory(path: Path) -> tuple[list[AnsibleHost], list[AnsibleGroup]]:
    """Hosts and groups as ansible-core reads `path` (a file or an inventory directory)."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")  # a file Ansible cannot read is an error
        os.environ.setdefault("ANSIBLE_LOCAL_TEMP", os.path.join(os.environ.get("TMPDIR", "/tmp"), "ispagent-ansible"))
        from ansible import constants
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError:
        raise InputError("from-ansible reads inventories with ansible-core: pip install 'ispagent[ansible]'") from None
    loader = DataLoader()
    try:
        inventory = InventoryManager(loader=loader, sources=[str(path)])
        manager = VariableManager(loader=loader, inventory=inventory)
        internal = set(constants.INTERNAL_STATIC_VARS) | {"omit"}
        hosts = [AnsibleHost(str(host.name), {str(k): plain(v) for k, v in manager.get_vars(
                     host=host, include_hostvars=False, stage="all").items() if k not in internal})
                 for host in inventory.get_hosts()]
    except AnsibleError as error:
        raise InputError(f"{path}: ansible cannot read it: {_first_line(error)}") from None
    groups = [AnsibleGroup(str(name), tuple(str(child.name) for child in group.child_groups),
                           tuple(str(h.name) for h in group.hosts))
              for name, group in inventory.groups.items() if name not in ("all", "ungrouped")]
    if not hosts:
        raise InputError(f"{path}: the Ansible inventory has no hosts")
    return hosts, groups


def plain(value: Any) -> Any:
    """Ansible's tagged values (its own str, dict and list types) as plain YAML-safe ones."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item) for item in value]
    return str(value)


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    return text[0] if text else type(error).__name__


def convert(hosts: list[AnsibleHost], groups: list[AnsibleGroup], *, source: str, known_hosts: str,
            host_key_policy: str = "strict", base_dir: Path | None = None) -> Conversion:
    """Our inventory YAML for Ansible's hosts and groups. `base_dir` resolves relative key paths."""
    notes: dict[str, list[str]] = {}
    entries = {host.name: _host_entry(host, notes, base_dir or Path.cwd()) for host in hosts}
    shared = _shared_vars([entry.get("vars", {}) for entry in entries.values()])
    for entry in entries.values():
        own = {k: v for k, v in entry.pop("vars", {}).items() if k not in shared}
        if own:
            entry["vars"] = own
    document: dict[str, Any] = {"ssh": {"known_hosts": known_hosts, "host_key_policy": host_key_policy}}
    if shared:
        document["defaults"] = {"vars": shared}
    group_entries = {group.name: _group_entry(group) for group in groups if group.children or group.hosts}
    if group_entries:
        document["groups"] = group_entries
    document["hosts"] = entries
    lines = [f"{what} ({_named(names)})" for what, names in notes.items()]
    header = f"# Made by `ispagent inventory from-ansible` from {source}.\n" + "".join(f"# left out: {line}\n" for line in lines)
    return Conversion(header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False), len(hosts), tuple(lines))


def _host_entry(host: AnsibleHost, notes: dict[str, list[str]], base_dir: Path) -> dict[str, Any]:
    values = dict(host.vars)
    entry: dict[str, Any] = {}
    connection = str(values.get("ansible_connection", "ssh"))
    if connection not in ("ssh", "paramiko", "smart"):
        notes.setdefault(f"ansible_connection={connection} (ispagent connects over SSH)", []).append(host.name)
    address = _first(values, ADDRESS_VARS)
    if address is not None:
        entry["address"] = _text(host, "ansible_host", address)
    port = _first(values, PORT_VARS)
    if port is not None:
        entry["port"] = _port(host, port)
    user = _first(values, USER_VARS)
    if user is not None:
        entry["user"] = _text(host, "ansible_user", user)
    key = _first(values, KEY_VARS)
    if key is not None:
        written = expand_home(_text(host, "ansible_ssh_private_key_file", key))
        entry["identity_file"] = str(written if written.is_absolute() else base_dir / written)
    if "ansible_become" in values:
        entry["sudo"] = _boolean(host, "ansible_become", values["ansible_become"])
        _check_become(host, values, notes)
    free = {}
    for name, value in values.items():
        if name in MAPPED:
            continue
        if name.startswith("ansible_"):
            notes.setdefault(name, []).append(host.name)
            continue
        free[name] = value
    if free:
        entry["vars"] = free
    return entry


def _check_become(host: AnsibleHost, values: dict[str, Any], notes: dict[str, list[str]]) -> None:
    method = str(values.get("ansible_become_method", "sudo"))
    user = str(values.get("ansible_become_user", "root"))
    if method != "sudo":
        notes.setdefault(f"ansible_become_method={method} (ispagent uses sudo -n)", []).append(host.name)
    if user != "root":
        notes.setdefault(f"ansible_become_user={user} (ispagent becomes root)", []).append(host.name)


def _first(values: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((values[name] for name in names if values.get(name) is not None), None)


def _text(host: AnsibleHost, name: str, value: Any) -> str:
    text = str(value)
    if "{{" in text or "{%" in text:
        raise InputError(f"host {host.name}: {name} is a Jinja2 template Ansible would render; write its value")
    return text


def _port(host: AnsibleHost, value: Any) -> int:
    text = _text(host, "ansible_port", value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InputError(f"host {host.name}: ansible_port {text!r} is not a TCP port (1-65535)")
    return int(text)


def _boolean(host: AnsibleHost, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InputError(f"host {host.name}: {name} {value!r} is not a boolean (true/false)")


def _shared_vars(all_vars: list[dict[str, Any]]) -> dict[str, Any]:
    """The vars every host has with the same value (written once, under defaults.vars)."""
    if not all_vars:
        return {}
    first = all_vars[0]
    return {key: value for key, value in first.items() if all(key in other and other[key] == value for other in all_vars)}


def _group_entry(group: AnsibleGroup) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if group.children:
        entry["children"] = list(group.children)
    if group.hosts:
        entry["hosts"] = list(group.hosts)
    return entry


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return f"{len(names)} host(s): {shown}" + (f", +{len(names) - 5} more" if len(names) > 5 else "")
