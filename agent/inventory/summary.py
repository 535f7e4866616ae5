"""The resolved inventory as plain data for people and scripts: secrets masked, paths as strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.inventory.model import Endpoint, Host, Inventory
from agent.secrets import mask

# The columns `ispagent inventory check` shows, in order; the ISPmanager vars follow the connection.
TABLE_COLUMNS: tuple[str, ...] = (
    "name", "address", "port", "user", "sudo", "gateway", "groups", "edition", "period", "release", "fqdn",
)  # fmt: skip


def host_summary(host: Host) -> dict[str, Any]:
    """One host as JSON-ready data; activation_key shows as `***`."""
    return {
        "name": host.name,
        "address": host.address,
        "port": host.endpoint.port,
        "user": host.endpoint.user,
        "identity_file": str(host.endpoint.identity_file) if host.endpoint.identity_file else None,
        **_ssh_config_keys(host.endpoint),
        "sudo": host.sudo,
        "gateway": _endpoint_summary(host.gateway) if host.gateway else None,  # the last jump host
        "jumps": [_endpoint_summary(hop) for hop in host.jump_hosts()],
        "proxy_command": mask(host.endpoint.proxy_command) if host.endpoint.proxy_command else None,
        "groups": list(host.groups),
        "vars": host.public_vars(),
    }


def inventory_summary(inventory: Inventory, hosts: Sequence[Host] | None = None) -> dict[str, Any]:
    """The inventory (or the `hosts` selected from it) as JSON-ready data."""
    return {
        "path": str(inventory.path),
        "ssh": {
            "known_hosts": str(inventory.ssh.known_hosts) if inventory.ssh.known_hosts else None,
            "host_key_policy": inventory.ssh.host_key_policy,
            "connect_timeout": inventory.ssh.connect_timeout,
            "command_timeout": inventory.ssh.command_timeout,
        },
        "groups": {name: list(members) for name, members in inventory.groups.items()},
        "hosts": [host_summary(host) for host in (inventory.hosts if hosts is None else hosts)],
    }


def table_row(host: Host) -> tuple[str, ...]:
    """One line of the `inventory check` table, with `-` for what is not set."""
    cells = {
        "name": host.name,
        "address": host.address,
        "port": str(host.endpoint.port),
        "user": host.endpoint.user,
        "sudo": "yes" if host.sudo else "no",
        "gateway": _route_cell(host),
        "groups": ",".join(host.groups),
        **{key: str(host.vars.get(key, "")) for key in ("edition", "period", "release", "fqdn")},
    }
    return tuple(cells[column] or "-" for column in TABLE_COLUMNS)


def _route_cell(host: Host) -> str:
    """The jump hosts as ProxyJump writes them (`a,b`), or that a ProxyCommand reaches the host."""
    if host.endpoint.proxy_command:
        return "ProxyCommand"  # the command itself is in --json: a table cell cannot hold it
    return ",".join(str(hop) for hop in host.jump_hosts())


def _endpoint_summary(endpoint: Endpoint) -> dict[str, Any]:
    summary = {
        "address": endpoint.address,
        "port": endpoint.port,
        "user": endpoint.user,
        "identity_file": str(endpoint.identity_file) if endpoint.identity_file else None,
        **_ssh_config_keys(endpoint),
    }
    if endpoint.proxy_command:  # a first hop reached over its own ProxyCommand (ssh config)
        summary["proxy_command"] = mask(endpoint.proxy_command)
    return summary


def _ssh_config_keys(endpoint: Endpoint) -> dict[str, Any]:
    """The keys ssh config chose for an endpoint without identity_file, when it chose any."""
    keys: dict[str, Any] = {}
    if endpoint.ssh_config_keys:
        keys["ssh_config_keys"] = [str(path) for path in endpoint.ssh_config_keys]
    if endpoint.identities_only:
        keys["identities_only"] = True
    return keys
