"""A playbook applied over a Fabric group: the runner's run (journal, --resume, batches, forks, the
license ledger, reports) with fabric's connections as the transport.

Each connection of the group is matched to its inventory host (by the name fabric was given, then
by address), adopted (adopt.py: host key checked against the inventory's known_hosts) by the
runner's worker thread that runs the host, and driven through our host shell like any SSH host. A
run made here is journaled like `ispagent run`, so `ispagent run --resume RUN_ID` finishes it (over
plain SSH) and `ispagent runs` lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fabric

from agent.errors import InputError
from agent.fabric.adopt import adopt_fabric_connection
from agent.inventory.model import Endpoint, Host, Inventory, SshSettings
from agent.runner.events import RunListener
from agent.runner.plan import RunOptions, RunPlan
from agent.runner.playbook import Playbook, load_playbook
from agent.runner.run import Echo, RunResult, start_run
from agent.secrets import shown
from agent.shipped import find_playbook
from agent.statedir import default_state_dir
from agent.transport.hostkeys import KnownHosts
from agent.transport.hostlog import HostLog
from agent.transport.ssh import SshConnection

# The playbooks that come with ispagent, by name (`install` is playbooks/install.yaml).


class FabricConnector:
    """A Connector (agent/transport/base.py) whose host named N is reached over `connections[N]`."""

    def __init__(
        self, connections: Mapping[str, fabric.Connection], settings: SshSettings, known_hosts: KnownHosts | None = None
    ) -> None:
        self.connections = dict(connections)
        self.settings = settings
        self.known_hosts = known_hosts or KnownHosts(settings.known_hosts, settings.host_key_policy)

    def connect(self, host: Host, log: HostLog | None = None) -> SshConnection:
        connection = self.connections.get(host.name)
        if connection is None:
            raise InputError(f"{host.name}: no fabric connection for this host")
        return adopt_fabric_connection(connection, host, self.known_hosts, log, self.settings)

    def close(self) -> None:
        pass  # each connection opened here was closed with its host; the others are their owners'


@dataclass(frozen=True)
class GroupHosts:
    """The hosts of a group, each with the fabric connection that reaches it."""

    hosts: tuple[Host, ...]
    connections: dict[str, fabric.Connection]


class PlaybookGroup(fabric.ThreadingGroup):
    """A ThreadingGroup that can also apply an ispagent playbook to its hosts (see apply_playbook)."""

    def apply(self, playbook: Path | str | Playbook, **options: Any) -> RunResult:
        return apply_playbook(self, playbook, **options)


def apply_playbook(
    group: Iterable[fabric.Connection],
    playbook: Path | str | Playbook,
    *,
    inventory: Path | str | None = None,
    host_vars: Mapping[str, Any] | None = None,
    known_hosts: Path | str | None = None,
    state_dir: Path | str | None = None,
    forks: int = 50,
    batch_size: str | None = None,
    max_fail_percent: float | None = None,
    dry_run: bool = False,
    listener: RunListener | None = None,
    echo: Echo | None = None,
) -> RunResult:
    """Run `playbook` (a path, a shipped playbook's name, or a Playbook) over the hosts of `group`.

    With `inventory`, each connection's host is the inventory's (its vars, sudo, and the inventory's
    known_hosts and policy); without, a host is made from the connection, with `host_vars`, and
    trusted through `known_hosts` (default ~/.ssh/known_hosts). Hosts run `forks` at once, in
    batches of `batch_size`, journaled under `state_dir` (default: as `ispagent run`).
    """
    connections = list(group)
    if not connections:
        raise InputError("the fabric group has no hosts")
    if isinstance(playbook, Playbook):
        loaded = playbook
    else:
        loaded = load_playbook(playbook_path(playbook))
    options = RunOptions(
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        forks=forks,
        batch_size=batch_size,
        max_fail_percent=max_fail_percent,
        dry_run=dry_run,
    )
    if inventory is not None:
        inventory_path = Path(inventory).resolve()
        known = _load_inventory(inventory_path)
        matched, ssh = hosts_of_inventory(connections, known), known.ssh
    else:
        inventory_path = None
        matched = hosts_of_connections(connections, host_vars or {})
        ssh = SshSettings(known_hosts=Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts")
    plan = RunPlan(loaded, matched.hosts, options, ssh, inventory_path)
    connector = FabricConnector(matched.connections, plan.ssh)
    return start_run(plan, listener or _ignore, echo, connector=connector)


def playbook_path(playbook: Path | str) -> Path:
    """`playbook` as a file: a file that exists, else a shipped playbook by name (`install`), as `ispagent run`."""
    return find_playbook(Path(playbook))


def hosts_of_inventory(connections: list[fabric.Connection], inventory: Inventory) -> GroupHosts:
    """Each connection's inventory host; a connection the inventory does not know is an error.

    A name fabric could not resolve (no ssh_config entry: `fab -H web1`) is reached where the
    inventory says; a connection fabric resolved elsewhere than the inventory's address, port or
    user is refused: the license, the verify checks and the ledger name the inventory's host.
    """
    hosts, reaching = [], {}
    for connection in connections:
        host = _inventory_host(connection, inventory)
        if host.name in reaching:
            raise InputError(f"the fabric group reaches {host.name} twice")
        hosts.append(host)
        reaching[host.name] = _connection_to(host, connection, inventory)
    return GroupHosts(tuple(hosts), reaching)


def hosts_of_connections(connections: list[fabric.Connection], host_vars: Mapping[str, Any]) -> GroupHosts:
    """A host for each connection, named as fabric was given it, with `host_vars` (checked by the plan)."""
    hosts = tuple(
        Host(
            connection.original_host, Endpoint(connection.host, connection.port, connection.user), vars=dict(host_vars)
        )
        for connection in connections
    )
    return GroupHosts(hosts, {host.name: connection for host, connection in zip(hosts, connections)})


def _inventory_host(connection: fabric.Connection, inventory: Inventory) -> Host:
    by_name = {host.name: host for host in inventory.hosts}
    if connection.original_host in by_name:
        return by_name[connection.original_host]
    by_address = [
        host
        for host in inventory.hosts
        if (host.endpoint.address, host.endpoint.port) == (connection.host, connection.port)
    ]
    if len(by_address) == 1:
        return by_address[0]
    raise InputError(
        f"{inventory.path}: no host named {shown(connection.original_host)} or at "
        f"{shown(connection.host)}:{connection.port}: add it to the inventory, or give fabric "
        "the inventory's host names"
    )


def _connection_to(host: Host, connection: fabric.Connection, inventory: Inventory) -> fabric.Connection:
    endpoint = host.endpoint
    if (connection.host, connection.port, connection.user) == (endpoint.address, endpoint.port, endpoint.user):
        return connection
    if connection.host == host.name and not connection.is_connected:
        return _inventory_connection(endpoint, host.gateway, connection.config)
    raise InputError(
        f"{inventory.path}: hosts.{host.name}: fabric reaches it as "
        f"{shown(connection.user)}@{shown(connection.host)}:{connection.port}, the inventory "
        f"as {endpoint}: make them agree"
    )


def _connect_keys(endpoint: Endpoint) -> dict[str, Any]:
    """paramiko's key arguments for `endpoint`: the inventory's identity_file; the IdentityFile entries
    of the ssh config the inventory was read with (fabric's own Config may read another), with
    ssh-agent's keys unless IdentitiesOnly; else fabric's own choice (default key files, ssh-agent)."""
    if endpoint.identity_file:
        return {"key_filename": [str(endpoint.identity_file)], "look_for_keys": False}
    if endpoint.ssh_config_keys:
        return {
            "key_filename": [str(path) for path in endpoint.ssh_config_keys],
            "look_for_keys": False,
            "allow_agent": not endpoint.identities_only,
        }
    return {}


def _inventory_connection(endpoint: Endpoint, gateway: Endpoint | None, config: fabric.Config) -> fabric.Connection:
    """A fabric Connection to `endpoint` with the inventory's key, through its bastion if any."""
    # Built in the caller's thread, before the run's threads start: fabric's constructor writes to
    # the Config it is given, which other threads must not see half done (docs/fabric.md). Shared,
    # as fabric's Group shares it: a clone per host costs 57 ms of CPU each (bench/fabric_group.py).
    keys = _connect_keys(endpoint)
    via = _inventory_connection(gateway, None, config) if gateway else None
    return fabric.Connection(
        endpoint.address, user=endpoint.user, port=endpoint.port, config=config, connect_kwargs=keys, gateway=via
    )


def _load_inventory(path: Path) -> Inventory:
    from agent.inventory.loader import load_inventory

    return load_inventory(path)


def _ignore(event: object) -> None:
    pass
