"""What a step sees of the host it works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.inventory.model import Host
from agent.transport.hostlog import HostLog
from agent.transport.ssh import SshConnection


@dataclass
class HostContext:
    host: Host
    connection: SshConnection
    dry_run: bool
    source_dirs: list[Path]  # where local files named by steps are looked up, in order
    state_dir: Path  # the run's state directory (journals; the ledger's default home)
    log: HostLog
    vars: dict[str, Any] = field(default_factory=dict)  # playbook vars <- inventory vars
    facts: dict[str, Any] = field(default_factory=dict)  # filled by the `facts` step
    # What a step hands to later steps on this host (e.g. the license for the installer). A step
    # that fills it must be registered with rerun_on_resume=True: a resumed run starts empty.
    state: dict[str, Any] = field(default_factory=dict)
    # Extra keys of this host's entry in the run report (e.g. "license"); never secrets.
    report: dict[str, Any] = field(default_factory=dict)

    def template_vars(self) -> dict[str, Any]:
        """The names a template can use: the host's vars, `facts`, and `host` (name, address)."""
        return {
            **self.vars,
            "facts": self.facts,
            "host": {"name": self.host.name, "address": self.host.address, "groups": list(self.host.groups)},
        }

    def local_path(self, src: str) -> Path:
        return find_local_file(self.source_dirs, src) or self.source_dirs[0] / src


def find_local_file(source_dirs: list[Path], src: str) -> Path | None:
    """`src` as is when absolute, else the first of `source_dirs` that holds it; None if none does."""
    path = Path(src).expanduser()
    if path.is_absolute():
        return path if path.exists() else None
    return next((base / path for base in source_dirs if (base / path).exists()), None)
