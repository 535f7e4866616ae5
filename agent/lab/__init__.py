"""The local lab: Debian 12 hosts in namespaces on this machine, and emulators of outside systems."""

from agent.lab.host import LabHost
from agent.lab.lab import DownResult, HostStatus, Lab, LabSummary, UpResult, labs_on_machine
from agent.lab.rootfs import ensure_rootfs

__all__ = ["Lab", "LabHost", "HostStatus", "LabSummary", "UpResult", "DownResult", "ensure_rootfs", "labs_on_machine"]
