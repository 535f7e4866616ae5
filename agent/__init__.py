"""ispagent: roll out licensed ISPmanager 6 panels to fleets of servers over SSH.

The Python API in one place (each name is imported on first use, so `ispagent --version` and the
CLI's start stay fast):

    from agent import RunOptions, RunPlan, start_run
    from agent.shipped import find_playbook
    result = start_run(RunPlan.from_files(find_playbook(Path("install")), Path("inventory.yaml"),
                                          RunOptions(state_dir=Path("state"))), listener=print)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Rollout": "agent.rollout",
    "AccountGroup": "agent.rollout",
    "RunPlan": "agent.runner.plan",
    "RunOptions": "agent.runner.plan",
    "start_run": "agent.runner.run",
    "resume_run": "agent.runner.run",
    "RunResult": "agent.runner.run",
    "run_host": "agent.runner.hostrun",
    "HostSource": "agent.runner.hostsource",
    "StaticHostSource": "agent.runner.hostsource",
    "load_playbook": "agent.runner.playbook",
    "playbook_from_data": "agent.runner.playbook",
    "load_inventory": "agent.inventory.loader",
    "Host": "agent.inventory.model",
    "Endpoint": "agent.inventory.model",
    "SshSettings": "agent.inventory.model",
    "Connection": "agent.transport.base",
    "Connector": "agent.transport.base",
    "SshConnection": "agent.transport.ssh",
    "SshConnector": "agent.transport.ssh",
    "LicenseLedger": "agent.ledger",
    "PartnerClient": "agent.partner.client",
    "UTC": "agent.clock",
}
_MODULES = {"account": "agent.licensing.account"}  # renew, delete, change_ip, ... on one license

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
