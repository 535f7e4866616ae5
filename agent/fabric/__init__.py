"""ispagent from Fabric, and Fabric over ispagent's connections: the `ispagent[fabric]` extra.

adopt.py: an open (or openable) `fabric.Connection` as an ispagent connection, its host key checked
against the inventory's known_hosts; commands still go through our host shell.
group.py: a Fabric group that applies a playbook with the runner's journal, batches and ledger.
tasks.py: the shipped playbooks and steps as Fabric tasks (`fab -H web1,web2 install`).
view.py: the reverse, a `fabric.Connection` over an ispagent connection, for a user's own fabric code.

Nothing else in ispagent imports this package: `import agent` works without fabric installed.
Why the runner's own path does not go through fabric: docs/fabric.md.
"""

from __future__ import annotations

try:
    import fabric  # noqa: F401
except ImportError as missing:  # pragma: no cover - exercised in a subprocess without fabric
    raise ImportError("agent.fabric needs Fabric: pip install 'ispagent[fabric]'") from missing

from agent.fabric.adopt import adopt_fabric_connection, check_host_key
from agent.fabric.group import FabricConnector, PlaybookGroup, apply_playbook
from agent.fabric.view import fabric_view

__all__ = [
    "FabricConnector",
    "PlaybookGroup",
    "adopt_fabric_connection",
    "apply_playbook",
    "check_host_key",
    "fabric_view",
]
