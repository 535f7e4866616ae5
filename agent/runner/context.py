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
    playbook_dir: Path
    log: HostLog
    vars: dict[str, Any] = field(default_factory=dict)  # playbook vars <- inventory vars
    facts: dict[str, Any] = field(default_factory=dict)  # filled by the `facts` step

    def template_vars(self) -> dict[str, Any]:
        """The names a template can use: the host's vars, `facts`, and `host` (name, address)."""
        return {
            **self.vars,
            "facts": self.facts,
            "host": {"name": self.host.name, "address": self.host.address, "groups": list(self.host.groups)},
        }

    def local_path(self, src: str, *search: Path) -> Path:
        """`src` resolved against the playbook's directory, then each of `search`; first that exists."""
        path = Path(src).expanduser()
        if path.is_absolute():
            return path
        for base in (self.playbook_dir, *search):
            if (base / path).exists():
                return base / path
        return self.playbook_dir / path
