"""What a run is asked to do: a playbook, the hosts, the settings and the options, built from objects.

`RunPlan.from_files` is what the CLI builds; a Python caller builds the same from a Playbook
(`playbook_from_data` or `load_playbook`) and Host objects, with no file at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agent.errors import InputError
from agent.hostsettings import HostSettings, check_var, read_host_settings
from agent.inventory.model import Host, SshSettings
from agent.runner.batches import parse_batch_size
from agent.runner.playbook import Playbook, load_playbook
from agent.userpath import expand_home


@dataclass(frozen=True)
class RunOptions:
    state_dir: Path
    forks: int = 50
    batch_size: str | None = None
    max_fail_percent: float | None = None
    limit: str | None = None
    dry_run: bool = False
    ssh_config: str | None = None
    known_hosts: str | None = None
    host_key_policy: Literal["strict", "accept-new"] | None = None
    only_drifted: bool = False  # audit every host read-only first; change only those that drifted
    rollout: str | None = None  # the shared rollout (agent/runner/fleet.py) this run is a node of

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["state_dir"] = str(self.state_dir)
        return data


@dataclass(frozen=True)
class RunPlan:
    """A run before it starts: every host's settings are read (and refused) when the plan is made."""

    playbook: Playbook
    hosts: tuple[Host, ...]
    options: RunOptions
    ssh: SshSettings = SshSettings()
    inventory_path: Path | None = None  # where the hosts came from: a resumed run reads them again
    settings: dict[str, HostSettings] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", tuple(self.hosts))
        names = [host.name for host in self.hosts]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise InputError("a run's hosts need distinct names: " + ", ".join(twice))
        object.__setattr__(self, "ssh", _ssh_with_options(self.ssh, self.options))
        parse_batch_size(self.options.batch_size, len(self.hosts))  # bad input fails here, before any host is touched
        object.__setattr__(self, "settings", host_settings(self.playbook, self.hosts, self.where))

    @classmethod
    def from_files(cls, playbook_path: Path, inventory_path: Path, options: RunOptions) -> RunPlan:
        """The plan of `ispagent run PLAYBOOK -i INVENTORY`: the hosts `options.limit` selects."""
        from agent.inventory.loader import load_inventory

        playbook = load_playbook(playbook_path)
        ssh_config = Path(options.ssh_config) if options.ssh_config else None
        inventory = load_inventory(inventory_path, ssh_config=ssh_config)
        return cls(playbook, inventory.select(options.limit), options, inventory.ssh, inventory_path.resolve())

    @property
    def where(self) -> str:
        """The hosts' origin, for messages: the inventory file, or that they were given as objects."""
        return str(self.inventory_path) if self.inventory_path else "hosts given in Python"

    def lock_key(self) -> str:
        """What two runs that must not overlap share: the inventory file, else the hosts' addresses."""
        if self.inventory_path:
            return str(self.inventory_path)
        endpoints = sorted(f"{h.endpoint.address}:{h.endpoint.port}" for h in self.hosts)
        return "hosts:" + hashlib.sha256("\n".join(endpoints).encode()).hexdigest()


def host_settings(playbook: Playbook, hosts: Iterable[Host], where: str) -> dict[str, HostSettings]:
    """Each host's settings (playbook vars <- inventory vars), all checked before any host is contacted.

    A bad value fails the whole run here, with the file and the key, instead of failing every host
    at the step that reads it after facts and preflight already ran.
    """
    for key, value in playbook.vars.items():
        try:
            check_var(key, value)
        except InputError as error:
            problem = str(error).removeprefix(f"var '{key}': ")
            raise type(error)(f"{playbook.path}: vars.{key}: {problem}") from None
    settings = {}
    for host in hosts:
        try:
            settings[host.name] = read_host_settings({**playbook.vars, **host.vars})
        except InputError as error:
            raise type(error)(f"{where}: hosts.{host.name}: {error}") from None
    return settings


def _ssh_with_options(ssh: SshSettings, options: RunOptions) -> SshSettings:
    if options.known_hosts:
        ssh = replace(ssh, known_hosts=expand_home(options.known_hosts))
    if options.host_key_policy:
        ssh = replace(ssh, host_key_policy=options.host_key_policy)
    return ssh
