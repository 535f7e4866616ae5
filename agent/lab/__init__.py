"""The local lab: Debian 12 hosts in namespaces on this machine, and emulators of outside systems."""

from agent.lab.host import LabHost
from agent.lab.lab import DownResult, HostStatus, Lab, UpResult
from agent.lab.rootfs import ensure_rootfs

__all__ = ["Lab", "LabHost", "HostStatus", "UpResult", "DownResult", "ensure_rootfs"]
