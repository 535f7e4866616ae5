"""Read an inventory YAML file into a checked `Inventory`, before any host is touched.

Reading happens in two passes. The first turns every node into typed specs (each value checked
where it is written, so the error names its line). The second resolves: group membership and
order, vars inheritance, and connection settings with this precedence, highest first:
the host's own keys, then `~/.ssh/config` for its address, then `defaults:`, then built-ins.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from agent.errors import InventoryError
from agent.inventory.addresses import (
    PORT_TEXT,
    GatewaySpec,
    canonical_address,
    is_address,
    looks_numeric,
    parse_gateway,
    parse_jump_chain,
)
from agent.inventory.groups import GroupSpec, GroupTree, Reference, resolve_groups
from agent.inventory.ispvars import read_vars
from agent.inventory.model import Endpoint, Host, Inventory, SshSettings
from agent.inventory.proxycommand import ProxyCommandError, TokenValues, check_proxy_command, expand_proxy_command
from agent.inventory.sshconfig import SshConfig, SshConfigEntry, default_ssh_config
from agent.secrets import shown
from agent.userpath import HomeUnknown, expand_home
from agent.yamlnodes import LocatedNode, read_yaml_file

TOP_KEYS = ("defaults", "ssh", "groups", "hosts")
CONNECTION_KEYS = ("user", "port", "identity_file", "sudo", "gateway", "proxy_command")
DEFAULTS_KEYS = (*CONNECTION_KEYS, "vars")
HOST_KEYS = ("address", *CONNECTION_KEYS, "groups", "vars")
GROUP_KEYS = ("vars", "children", "hosts")
SSH_KEYS = ("known_hosts", "host_key_policy", "connect_timeout", "command_timeout")
GATEWAY_KEYS = ("address", "port", "user", "identity_file")
HOST_KEY_POLICIES = ("strict", "accept-new")

DEFAULT_USER = "root"
DEFAULT_PORT = 22
# `gateway: none` (or `proxy_command: none`) on a host turns off a gateway or ProxyCommand set in
# defaults: or ssh config (as ProxyJump none).
NO_GATEWAY = "none"
# Jump hosts in front of one host, counting those ssh config puts in front of the first hop: past
# this, a ProxyJump loop in ssh config (a through b, b through a) is the likelier story.
MAX_JUMPS = 10

# Names end up in `--limit` patterns (comma-separated fnmatch globs) and in file names of reports.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")  # fullmatch: `$` would let a final newline through
_USER = re.compile(r"[^\s@:]+")

T = TypeVar("T")


@dataclass(frozen=True)
class ProxyCommandSpec:
    """A ProxyCommand as written (checked); its tokens are expanded for the endpoint it reaches."""

    text: str


# How one level (a host, defaults, ssh config) says a host is reached: through jump hosts (the first
# hop first), a ProxyCommand, or directly (`none`, overriding a lower level).
Route = tuple[GatewaySpec, ...] | ProxyCommandSpec | Literal["none"]


@dataclass(frozen=True)
class Connection:
    """Connection settings as one level (defaults or a host) writes them; None where it is silent."""

    user: str | None = None
    port: int | None = None
    identity_file: Path | None = None
    sudo: bool | None = None
    route: Route | None = None


@dataclass(frozen=True)
class HostSpec:
    name: str
    node: LocatedNode
    address: str | None
    connection: Connection
    groups: tuple[Reference, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)


def check_made_inventory(text: str, source: str) -> None:
    """Refuse, in one InputError line, inventory YAML we made (from-vagrant, from-ansible) that
    `inventory check` would refuse (a missing key file, two hosts on one address and port...):
    what we hand out must be usable as it is. `source` names what it was made from."""
    from agent.errors import InputError

    with tempfile.TemporaryDirectory(prefix="ispagent-made-") as directory:
        path = Path(directory) / "inventory.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_inventory(path, ssh_config=Path(os.devnull))
        except InputError as error:
            problem = str(error).removeprefix(f"{path}:")
            raise InputError(
                f"{source}: the inventory made from it fails inventory check at line {problem}; nothing was written"
            ) from None


def load_inventory(path: Path, *, ssh_config: Path | None = None) -> Inventory:
    """Read, check and resolve the inventory at `path`. Raises InventoryError on the first problem.

    `ssh_config` None means `~/.ssh/config` when it exists. Relative paths inside the inventory
    (identity_file, known_hosts) are relative to the inventory's own directory.
    """
    path = Path(path)  # a str from a script is fine too; messages keep the path as given
    root = read_yaml_file(
        path, InventoryError, what="inventory file", hint="pass the path of an inventory YAML with -i"
    )
    if root.is_null:
        raise root.error("the inventory is empty", "add a hosts: mapping")
    if not root.is_mapping:
        expected = "a mapping with hosts: (and optionally defaults:, ssh:, groups:) at the top level"
        raise root.error(f"expected {expected}, got {root.describe()}")
    top = root.mapping(TOP_KEYS)
    base_dir = path.absolute().parent
    ssh = _read_ssh_settings(top.get("ssh"), base_dir)
    defaults_entries = top["defaults"].mapping(DEFAULTS_KEYS) if "defaults" in top else {}
    defaults = _read_connection(defaults_entries, base_dir)
    default_vars = read_vars(defaults_entries["vars"]) if "vars" in defaults_entries else {}
    groups = _read_groups(top.get("groups"))
    hosts = _read_hosts(top.get("hosts"), root, base_dir)
    _reject_name_clashes(groups, hosts)
    tree = resolve_groups(groups, {host.name: host.groups for host in hosts}, [host.name for host in hosts])
    config_path = ssh_config if ssh_config is not None else default_ssh_config()
    config = SshConfig(config_path, check_permissions=ssh_config is None) if config_path is not None else None
    resolved = tuple(
        _resolve_host(host, defaults, _merged_vars(host, default_vars, groups, tree), tree, config) for host in hosts
    )
    _reject_shared_endpoints(resolved, hosts)
    _check_host_settings(resolved, hosts)
    members = {group: tuple(h.name for h in resolved if h.name in tree.members[group]) for group in tree.order}
    return Inventory(path=path, hosts=resolved, groups=members, ssh=ssh)


# --- first pass: nodes to specs -------------------------------------------------------------------


def _read_ssh_settings(node: LocatedNode | None, base_dir: Path) -> SshSettings:
    entries = node.mapping(SSH_KEYS) if node is not None else {}
    known_hosts = _optional(entries, "known_hosts", lambda n: _resolve_path(n, base_dir))
    return SshSettings(
        known_hosts=known_hosts or Path.home() / ".ssh" / "known_hosts",
        host_key_policy=_optional(entries, "host_key_policy", _read_host_key_policy) or "strict",
        connect_timeout=_optional(entries, "connect_timeout", LocatedNode.positive_number) or 10.0,
        command_timeout=_optional(entries, "command_timeout", LocatedNode.positive_number) or 600.0,
    )


def _read_host_key_policy(node: LocatedNode) -> str:
    policy = node.string()
    if policy not in HOST_KEY_POLICIES:
        raise node.error(f"{shown(policy)} is not one of {', '.join(HOST_KEY_POLICIES)}")
    return policy


def _read_connection(entries: dict[str, LocatedNode], base_dir: Path) -> Connection:
    return Connection(
        user=_optional(entries, "user", _read_user),
        port=_optional(entries, "port", _read_port),
        identity_file=_optional(entries, "identity_file", lambda n: _read_identity_file(n, base_dir)),
        sudo=_optional(entries, "sudo", LocatedNode.boolean),
        route=_read_route(entries, base_dir),
    )


def _optional(entries: dict[str, LocatedNode], key: str, read: Callable[[LocatedNode], T]) -> T | None:
    node = entries.get(key)
    return None if node is None else read(node)


def is_valid_name(name: str) -> bool:
    """Whether `name` is a host or group name an inventory takes (also what from-vagrant may write)."""
    return bool(_NAME.fullmatch(name))


def is_valid_user(user: str) -> bool:
    return bool(_USER.fullmatch(user)) and user.isprintable()


def _read_user(node: LocatedNode) -> str:
    user = node.string()
    if not is_valid_user(user):
        raise node.error(f"{shown(user)} is not a valid user name")
    return user


def _read_port(node: LocatedNode) -> int:
    return node.integer(1, 65535)


def _read_address(node: LocatedNode) -> str:
    address = node.string()
    if not is_address(address):
        raise node.error(f"{shown(address)} is not an IP address or DNS name", _numeric_fix(address))
    return address


def _numeric_fix(address: str) -> str | None:
    if looks_numeric(address):
        return "write an IPv4 address as four decimal numbers without leading zeros, e.g. 192.0.2.10"
    return None


def _read_identity_file(node: LocatedNode, base_dir: Path) -> Path:
    written = node.string()
    path = _resolve_path(node, base_dir)
    try:
        found = path.is_file()
    except OSError as problem:  # is_file() lets "File name too long" through
        raise node.error(
            f"{shown(written)} cannot be looked up: {problem.strerror}", "give the path of the key file"
        ) from None
    if not found:
        raise node.error(
            f"{shown(written)} does not exist (looked for {path})",
            "a relative path starts at the inventory's directory",
        )
    return path


def _resolve_path(node: LocatedNode, base_dir: Path) -> Path:
    try:
        path = expand_home(node.string())
    except HomeUnknown as error:
        raise node.error(str(error), "'~/' is your home, '~name/' another user's") from None
    return path if path.is_absolute() else base_dir / path


def _read_route(entries: dict[str, LocatedNode], base_dir: Path) -> Route | None:
    if "gateway" in entries and "proxy_command" in entries:
        raise entries["proxy_command"].error(
            "gateway and proxy_command are both set", "keep one: ssh, too, takes either ProxyJump or ProxyCommand"
        )
    if "proxy_command" in entries:
        return _read_proxy_command(entries["proxy_command"])
    return _optional(entries, "gateway", lambda n: _read_gateway(n, base_dir))


def _read_proxy_command(node: LocatedNode) -> ProxyCommandSpec | Literal["none"]:
    text = node.string()
    if text == NO_GATEWAY:
        return NO_GATEWAY
    try:
        check_proxy_command(text)
    except ProxyCommandError as problem:
        raise node.error(f"the proxy command {problem}", _PROXY_COMMAND_FIX) from None
    return ProxyCommandSpec(text)


_PROXY_COMMAND_FIX = "write a shell command as for ssh's ProxyCommand, e.g. ssh -W %h:%p bastion"
_GATEWAY_FIX = (
    "write host, user@host or user@host:port (IPv6 as [2001:db8::1]), comma-separated for a chain, "
    "or a mapping with address, port, user"
)


def _read_gateway(node: LocatedNode, base_dir: Path) -> Route:
    if node.is_mapping:
        return (_read_gateway_mapping(node, base_dir),)
    if node.is_sequence:
        return _read_gateway_list(node, base_dir)
    text = node.string()
    if text == NO_GATEWAY:
        return NO_GATEWAY
    chain = parse_jump_chain(text)
    if chain is None:
        raise node.error(f"{shown(text)} is not a valid gateway", _GATEWAY_FIX)
    return _short_enough(chain, node)


def _read_gateway_list(node: LocatedNode, base_dir: Path) -> tuple[GatewaySpec, ...]:
    """`gateway: [first-hop, {address: second-hop, port: 2222}]`: a chain, the first hop first."""
    hops: list[GatewaySpec] = []
    for item in node.sequence():
        if item.is_mapping:
            hops.append(_read_gateway_mapping(item, base_dir))
            continue
        text = item.string()
        spec = parse_gateway(text)
        if spec is None:
            raise item.error(f"{shown(text)} is not a valid jump host", "write host, user@host or user@host:port")
        hops.append(spec)
    if not hops:
        raise node.error("the gateway list is empty", "name the jump hosts, the first hop first, or write none")
    return _short_enough(tuple(hops), node)


def _short_enough(chain: tuple[GatewaySpec, ...], node: LocatedNode) -> tuple[GatewaySpec, ...]:
    if len(chain) > MAX_JUMPS:
        raise node.error(f"{len(chain)} jump hosts: at most {MAX_JUMPS} are taken")
    return chain


def _read_gateway_mapping(node: LocatedNode, base_dir: Path) -> GatewaySpec:
    entries = node.mapping(GATEWAY_KEYS)
    if "address" not in entries:
        raise node.error("the gateway has no address", "add address: with the gateway's IP or DNS name")
    return GatewaySpec(
        address=_read_address(entries["address"]),
        port=_optional(entries, "port", _read_port),
        user=_optional(entries, "user", _read_user),
        identity_file=_optional(entries, "identity_file", lambda n: _read_identity_file(n, base_dir)),
    )


def _check_name(key_node: LocatedNode, name: str, kind: str) -> None:
    if not is_valid_name(name):
        raise key_node.error(f"{shown(name)} is not a valid {kind} name", "use letters, digits, '.', ':', '_' and '-'")


def _read_references(node: LocatedNode | None) -> tuple[Reference, ...]:
    if node is None:
        return ()
    return tuple((item.string(), item) for item in node.sequence())


def _read_groups(node: LocatedNode | None) -> dict[str, GroupSpec]:
    groups: dict[str, GroupSpec] = {}
    for name, group_node in (node.mapping(entry="group name") if node is not None else {}).items():
        _check_name(group_node, name, "group")
        entries = group_node.mapping(GROUP_KEYS)
        groups[name] = GroupSpec(
            name=name,
            vars=read_vars(entries["vars"]) if "vars" in entries else {},
            children=_read_references(entries.get("children")),
            hosts=_read_references(entries.get("hosts")),
        )
    return groups


def _read_hosts(node: LocatedNode | None, root: LocatedNode, base_dir: Path) -> list[HostSpec]:
    if node is None:
        raise root.at("hosts").error("no hosts defined", "add at least one host under hosts:")
    entries = node.mapping(entry="host name")
    if not entries:
        raise node.error("no hosts defined", "add at least one host under hosts:")
    return [_read_host(name, host_node, base_dir) for name, host_node in entries.items()]


def _read_host(name: str, node: LocatedNode, base_dir: Path) -> HostSpec:
    _check_name(node, name, "host")
    entries = node.mapping(HOST_KEYS)
    return HostSpec(
        name=name,
        node=node,
        address=_optional(entries, "address", _read_address),
        connection=_read_connection(entries, base_dir),
        groups=_read_references(entries.get("groups")),
        vars=read_vars(entries["vars"]) if "vars" in entries else {},
    )


def _reject_name_clashes(groups: dict[str, GroupSpec], hosts: list[HostSpec]) -> None:
    # `--limit web1` must mean one thing: the host or the group.
    for host in hosts:
        if host.name in groups:
            raise host.node.error(f"'{host.name}' is both a host and a group name", "rename one of them")


# --- second pass: specs to hosts ------------------------------------------------------------------


def _merged_vars(host: HostSpec, default_vars: dict[str, Any], groups: dict[str, GroupSpec], tree: GroupTree) -> dict:
    merged = dict(default_vars)
    for group in tree.groups_of(host.name):
        merged.update(groups[group].vars)
    merged.update(host.vars)
    return merged


def _resolve_host(
    host: HostSpec, defaults: Connection, merged_vars: dict[str, Any], tree: GroupTree, config: SshConfig | None
) -> Host:
    from_config = config.lookup(host.address or host.name) if config else SshConfigEntry()
    own = host.connection
    user = _first(own.user, from_config.user, defaults.user, DEFAULT_USER)
    inventory_default = {"identity_file": defaults.identity_file} if defaults.identity_file else {}
    keys = _keys(own.identity_file, from_config, inventory_default)
    endpoint = Endpoint(
        address=_resolved_address(host, from_config, config),
        port=_first(own.port, _config_port(from_config, host, config), defaults.port, DEFAULT_PORT),
        user=user,
        **keys,
    )
    route = _first(own.route, _config_route(from_config, host, config), defaults.route)
    routed = _routed(endpoint, route, host.name, user, keys, host, config, depth=0)
    return Host(
        name=host.name,
        endpoint=replace(routed, via=None),
        sudo=_first(own.sudo, defaults.sudo, user != "root"),
        gateway=routed.via,
        groups=tree.groups_of(host.name),
        vars=merged_vars,
    )


def _first(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


def _keys(own: Path | None, from_config: SshConfigEntry, inherited: dict[str, Any]) -> dict[str, Any]:
    """An endpoint's key fields: the inventory's identity_file alone; else the IdentityFile entries
    ssh config gives it, with its IdentitiesOnly; else `inherited` (the inventory's defaults, or the
    host's keys for a jump host), under ssh config's IdentitiesOnly if it says so."""
    if own is not None:
        return {"identity_file": own}
    if from_config.identity_files:
        return {"ssh_config_keys": from_config.identity_files, "identities_only": from_config.identities_only}
    if from_config.identities_only:
        return {**inherited, "identities_only": True}
    return inherited


def _resolved_address(host: HostSpec, from_config: SshConfigEntry, config: SshConfig | None) -> str:
    if host.address:
        return host.address
    if from_config.hostname:
        if not is_address(from_config.hostname):
            hostname = from_config.hostname
            raise host.node.error(f"HostName {shown(hostname)} from {config.path} is not an IP address or DNS name")
        return from_config.hostname
    if not is_address(host.name):
        raise host.node.error(
            f"the host name '{host.name}' is not an IP address or DNS name", _numeric_fix(host.name) or "add address:"
        )
    return host.name


def _config_port(entry: SshConfigEntry, host: HostSpec, config: SshConfig | None) -> int | None:
    if entry.port is None:
        return None
    if not PORT_TEXT.fullmatch(entry.port) or not 1 <= int(entry.port) <= 65535:
        raise host.node.error(f"Port {shown(entry.port)} from {config.path} is not a port number (1-65535)")
    return int(entry.port)


def _config_route(entry: SshConfigEntry, host: HostSpec, config: SshConfig | None) -> Route | None:
    """What ssh config says about reaching `entry`'s host: ProxyJump, ProxyCommand, or nothing."""
    if entry.proxy_jump is not None and entry.proxy_command is not None:
        # ssh takes whichever of the two comes first in the file; paramiko's lookup does not say which.
        raise host.node.error(
            f"both ProxyJump and ProxyCommand in {config.path} apply",
            "keep one there, or set gateway: or proxy_command: on the host",
        )
    if entry.proxy_command is not None:
        try:
            check_proxy_command(entry.proxy_command)
        except ProxyCommandError as problem:
            raise host.node.error(f"ProxyCommand from {config.path} {problem}", _PROXY_COMMAND_FIX) from None
        return ProxyCommandSpec(entry.proxy_command)
    if entry.proxy_jump is None:
        return None
    chain = parse_jump_chain(entry.proxy_jump)
    if chain is None:
        raise host.node.error(f"ProxyJump {shown(entry.proxy_jump)} from {config.path} is not a valid gateway")
    return chain


def _routed(
    endpoint: Endpoint,
    route: Route | None,
    name: str,
    user: str,
    keys: dict[str, Any],
    host: HostSpec,
    config: SshConfig | None,
    *,
    depth: int,
) -> Endpoint:
    """`endpoint` reached as `route` says: its `via` the last of a chain of jump hosts, or its proxy command."""
    if route is None or route == NO_GATEWAY:
        return endpoint
    if isinstance(route, ProxyCommandSpec):
        values = TokenValues(endpoint.address, endpoint.port, endpoint.user, name)
        return replace(endpoint, proxy_command=expand_proxy_command(route.text, values))
    via = None
    for index, spec in enumerate(route):
        via = _jump_endpoint(spec, via, user, keys, host, config, depth=depth + index)
    return replace(endpoint, via=via)


def _jump_endpoint(
    spec: GatewaySpec,
    via: Endpoint | None,
    user: str,
    keys: dict[str, Any],
    host: HostSpec,
    config: SshConfig | None,
    *,
    depth: int,
) -> Endpoint:
    """One jump host, after `via`. Unset parts come from ssh config for the jump host, then the host."""
    if depth >= MAX_JUMPS:
        raise host.node.error(
            f"more than {MAX_JUMPS} jump hosts in front of it", "look for a ProxyJump loop in ssh config"
        )
    from_config = config.lookup(spec.address) if config else SshConfigEntry()
    endpoint = Endpoint(
        address=from_config.hostname if from_config.hostname and is_address(from_config.hostname) else spec.address,
        port=_first(spec.port, _config_port(from_config, host, config), DEFAULT_PORT),
        user=_first(spec.user, from_config.user, user),
        via=via,
        **_keys(spec.identity_file, from_config, keys),
    )
    if via is not None:  # a later hop is reached from the hop before it, whatever ssh config says about it
        return endpoint
    # The first hop is reached as `ssh HOP` would reach it: through its own ProxyJump or ProxyCommand.
    route = _config_route(from_config, host, config)
    return _routed(endpoint, route, spec.address, user, keys, host, config, depth=depth + 1)


def _check_host_settings(hosts: tuple[Host, ...], specs: list[HostSpec]) -> None:
    """Each host's vars together (each var alone was checked where it is written): `mysql_server`
    without `dbtype: mysql`, say, once defaults, groups and the host are merged. Hosts whose
    settings are the same as an earlier host's are not checked again."""
    from agent.errors import InputError
    from agent.hostsettings import read_host_settings, settings_key

    passed: set[tuple] = set()
    for host, spec in zip(hosts, specs):
        key = settings_key(host.vars)
        if key is not None and key in passed:
            continue
        try:
            read_host_settings(host.vars)
        except InputError as error:
            raise spec.node.error(str(error)) from None
        if key is not None:
            passed.add(key)


def _reject_shared_endpoints(hosts: tuple[Host, ...], specs: list[HostSpec]) -> None:
    # Behind different gateways the same private address is a different machine, so the gateway
    # is part of what must be unique.
    seen: dict[tuple, Host] = {}
    for host, spec in zip(hosts, specs):
        jumps = host.jump_hosts()
        route = (
            tuple((canonical_address(hop.address), hop.port, hop.proxy_command) for hop in jumps),
            host.endpoint.proxy_command,
        )
        key = (canonical_address(host.address), host.endpoint.port, route)
        if key in seen:
            first = seen[key]
            raise spec.node.error(
                f"same address and port as host {first.name} ({host.address}:{host.endpoint.port})",
                "remove one of them or fix the address",
            )
        seen[key] = host
