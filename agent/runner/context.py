"""What a step sees of the host it works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.hostsettings import HostSettings
from agent.hoststate import HostState, StateKey
from agent.inventory.model import Host
from agent.runner.services import RunServices
from agent.transport.base import Connection
from agent.transport.hostlog import HostLog

# How many steps that may change the host (not read_only) have started on it in this run, counted by
# the runner: what a step read from the host is still current while this count has not moved.
HOST_CHANGES: StateKey[int] = StateKey("host_changes", "steps that may change the host started so far (the runner)")


class HostReading(Protocol):
    """Something a step read from the host, with the host's HOST_CHANGES count at the time."""

    @property
    def host_changes(self) -> int: ...


Reading = TypeVar("Reading", bound=HostReading)


@dataclass
class HostContext:
    host: Host
    connection: Connection
    dry_run: bool
    source_dirs: list[Path]  # where local files named by steps are looked up, in order
    state_dir: Path  # the run's state directory (journals; the ledger's default home)
    log: HostLog
    settings: HostSettings  # the settings ispagent reads from the vars, checked when the run started
    services: RunServices  # shared by the run's hosts, closed with the run
    vars: dict[str, Any] = field(default_factory=dict)  # playbook vars <- inventory vars, for templates
    facts: dict[str, Any] = field(default_factory=dict)  # filled by the `facts` step
    state: HostState = field(default_factory=HostState)
    # Extra keys of this host's entry in the run report (e.g. "license"); never secrets.
    report: dict[str, Any] = field(default_factory=dict)

    def template_vars(self) -> dict[str, Any]:
        """The names a template can use: the host's vars, `facts`, and `host` (name, address)."""
        return {
            **self.vars,
            "facts": self.facts,
            "host": {"name": self.host.name, "address": self.host.address, "groups": list(self.host.groups)},
        }

    def read_local_file(self, src: str) -> bytes:
        """The bytes of a local file a step names (see agent/runner/localfiles.py), read once per run;
        StepFailed says why not."""
        return self.services.local_file(self.source_dirs, src)

    def host_changes(self) -> int:
        """How many steps that may change the host have started so far: what a step read from the host
        at this count is still current while the count stays the same."""
        return self.state.get(HOST_CHANGES, 0)

    def still_current(self, reading: Reading | None) -> Reading | None:
        """`reading` if no step that may change the host has started since it was taken, else None."""
        return reading if reading is not None and reading.host_changes == self.host_changes() else None

    def host_may_change(self) -> None:
        """Count a step that may change the host, before it starts (it may fail halfway)."""
        self.state.set(HOST_CHANGES, self.host_changes() + 1)
