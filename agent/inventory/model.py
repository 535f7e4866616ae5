"""The resolved inventory: what the rest of ispagent works with, after every check has passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

Edition = Literal["lite", "pro", "host", "business"]
Period = Literal["monthly", "annual"]
Release = Literal["stable", "beta"]

EDITIONS: tuple[str, ...] = ("lite", "pro", "host", "business")
PERIODS: tuple[str, ...] = ("monthly", "annual")
RELEASES: tuple[str, ...] = ("stable", "beta")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to open an SSH connection (a host itself, or a bastion in front of it)."""

    address: str
    port: int = 22
    user: str = "root"
    identity_file: Path | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


@dataclass(frozen=True)
class Host:
    """One server of the inventory, with its connection settings and its merged variables.

    `vars` is defaults <- groups (parents before children) <- host, already validated: the
    ISPmanager keys (edition, period, release, fqdn, activation_key) hold allowed values.
    """

    name: str
    endpoint: Endpoint
    sudo: bool = False
    gateway: Endpoint | None = None
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.endpoint.address


@dataclass(frozen=True)
class SshSettings:
    """How ispagent trusts and times SSH connections: inventory-wide, overridable on the CLI."""

    known_hosts: Path | None = None
    host_key_policy: Literal["strict", "accept-new"] = "strict"
    connect_timeout: float = 10.0
    command_timeout: float = 600.0


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]]  # group name -> names of member hosts (children included)
    ssh: SshSettings = SshSettings()

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)
