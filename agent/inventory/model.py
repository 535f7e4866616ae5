"""The resolved inventory: what the rest of ispagent works with, after every check has passed."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.errors import InputError, did_you_mean
from agent.secrets import MASK, masked, shown


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to open an SSH connection (a host itself, or a bastion in front of it)."""

    address: str
    port: int = 22
    user: str = "root"
    identity_file: Path | None = None  # the inventory's key: offered alone, without ssh-agent's
    # How this endpoint is reached when not by TCP from here: through the jump host `via` (whose own
    # `via` is the hop before it: ProxyJump a,b), or over the stdin/stdout of `proxy_command`, a shell
    # line with its tokens already expanded and quoted (ProxyCommand). Never both.
    via: Endpoint | None = None
    proxy_command: str | None = None
    # Without identity_file, the keys are chosen as ssh chooses them: the IdentityFile entries ssh
    # config gives this endpoint (the files that exist, in order), else the default key files, then
    # ssh-agent's keys unless ssh config says IdentitiesOnly (agent/transport/privatekeys.py).
    ssh_config_keys: tuple[Path, ...] = ()
    identities_only: bool = False

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    def jumps(self) -> tuple[Endpoint, ...]:
        """The jump hosts in front of this endpoint and this endpoint itself, the first hop first."""
        return (*self.via.jumps(), self) if self.via else (self,)


@dataclass(frozen=True)
class Host:
    """One server of the inventory, with its connection settings and its merged variables.

    `vars` is defaults <- groups (parents before children) <- host, already validated: the
    ISPmanager keys (edition, period, release, fqdn, activation_key) hold allowed values.
    """

    name: str
    endpoint: Endpoint
    sudo: bool = False
    gateway: Endpoint | None = None  # the last jump host before this one; `jump_hosts()` is the whole chain
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.endpoint.address

    def jump_hosts(self) -> tuple[Endpoint, ...]:
        """The jump hosts in front of this host, the first hop first; none when it is reached directly."""
        return self.gateway.jumps() if self.gateway else ()

    def public_vars(self) -> dict[str, Any]:
        """`vars` safe to print or log: secrets (activation_key, passwords, URL passwords) replaced by `***`."""
        shown: dict[str, Any] = masked(dict(self.vars))
        return shown


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

    def select(self, limit: str | None) -> tuple[Host, ...]:
        """The hosts a `--limit` names, in inventory order; every host when `limit` is None.

        `limit` is comma-separated patterns, each a host name, a group name or an fnmatch glob on
        host names (`web*`). A limit that is empty or blank, has an empty pattern, or has a pattern
        that matches nothing raises InputError: `--limit "$UNSET"` in a cron line must not select the
        whole fleet, and a typo must not silently shrink a rollout.
        """
        if limit is None:
            return self.hosts
        patterns = [pattern.strip() for pattern in limit.split(",")]
        if not any(patterns):
            raise InputError(f"limit {shown(limit)} names no host or group; {_LIMIT_FIX}")
        if not all(patterns):
            raise InputError(f"limit {shown(limit)} has an empty pattern between commas; {_LIMIT_FIX}")
        chosen: set[str] = set()
        for pattern in patterns:
            matched = self._match(pattern)
            if not matched:
                raise InputError(self._no_match_message(pattern))
            chosen |= matched
        return tuple(h for h in self.hosts if h.name in chosen)

    def _match(self, pattern: str) -> set[str]:
        if pattern in self.groups:
            return set(self.groups[pattern])
        return {h.name for h in self.hosts if fnmatch.fnmatchcase(h.name, pattern)}

    def _no_match_message(self, pattern: str) -> str:
        names = [h.name for h in self.hosts] + list(self.groups)
        fix = did_you_mean(pattern, names) or "run `ispagent inventory check` to list hosts and groups"
        return f"limit pattern {shown(pattern)} matches no host or group in {self.path}; {fix}"


_LIMIT_FIX = "give host names, group names or globs, or leave the limit out to select every host"
SECRET_VARS: tuple[str, ...] = ("activation_key",)


class Secret(str):
    """A string var that must never be shown: its repr is masked, so a logged Host leaks nothing.

    It is still a `str` (comparisons, f-strings and `str()` give the real value) for the one step
    that must send it to the panel.
    """

    def __repr__(self) -> str:
        return repr(MASK)
