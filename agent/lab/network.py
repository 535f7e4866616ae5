"""The lab's network: one bridge in the root namespace, one network namespace and veth pair per host.

Addresses come from 198.18.0.0/16 (the benchmark range). The bridge holds 198.18.0.1, where the
lab's own services listen; hosts reach nothing else (no NAT, no forwarding).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Iterable

from agent.errors import LabError
from agent.lab.commands import run

NETWORK = ipaddress.ip_network("198.18.0.0/16")
BRIDGE = "ispagent0"
BRIDGE_ADDRESS = "198.18.0.1"
BRIDGE_MAC = "02:15:18:00:00:01"
MAX_HOSTS = 1000
NETNS_PREFIX = "ispagent-"
VETH_PREFIX = "ispv"
NETNS_DIR = Path("/run/netns")
NEIGH_SYSCTL_DIR = Path("/proc/sys/net/ipv4/neigh/default")
# The root namespace's ARP table holds every lab host the control node talks to. Linux's defaults
# (gc_thresh1/2/3 = 128/512/1024) overflow near 1000 hosts: "neighbor table overflow!" in dmesg,
# and connects fail with EHOSTUNREACH, which reads as unreachable hosts.
NEIGH_HEADROOM = (128, 512, 1024)  # room kept above the lab's own entries, for the machine's other neighbours


def host_address(index: int) -> str:
    """198.18.0.2 for host 1, 250 hosts per /24: 198.18.3.251 for host 1000."""
    _check_index(index)
    n = index - 1
    return f"198.18.{n // 250}.{n % 250 + 2}"


def host_mac(index: int) -> str:
    """The host side (eth0) MAC. Fixed per index: a new random MAC behind an address the bridge
    still has in its ARP cache stalls connections for 15-35 s after a host is recreated."""
    _check_index(index)
    return f"02:15:18:01:{index >> 8:02x}:{index & 0xFF:02x}"


def bridge_port_mac(index: int) -> str:
    _check_index(index)
    return f"02:15:18:02:{index >> 8:02x}:{index & 0xFF:02x}"


def netns_name(index: int) -> str:
    return f"{NETNS_PREFIX}h{index}"


def veth_name(index: int) -> str:
    return f"{VETH_PREFIX}{index}"


def ensure_bridge() -> None:
    """Create the bridge with its fixed MAC and address, unless it is already there."""
    if bridge_exists():
        return
    _ip_batch([
        f"link add {BRIDGE} address {BRIDGE_MAC} type bridge",
        f"addr add {BRIDGE_ADDRESS}/{NETWORK.prefixlen} dev {BRIDGE}",
        f"link set {BRIDGE} up",
    ], what=f"creating bridge {BRIDGE}")


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def add_hosts(indices: Iterable[int]) -> None:
    """Create each host's network namespace and veth pair in one `ip -batch` (one process for all).

    The host side is created directly inside the namespace as eth0 and stays down: the host's init
    script gives it its address and brings it up.
    """
    lines = []
    for index in indices:
        ns, veth = netns_name(index), veth_name(index)
        lines += [
            f"neigh flush dev {BRIDGE} to {host_address(index)}",
            f"netns add {ns}",
            f"link add {veth} address {bridge_port_mac(index)} type veth"
            f" peer name eth0 address {host_mac(index)} netns {ns}",
            f"link set {veth} master {BRIDGE} up",
        ]
    _ip_batch(lines, what="creating host network namespaces")


def delete_netns(names: Iterable[str]) -> None:
    """Delete namespaces (their veths go with them); names already gone are skipped."""
    existing = set(list_netns())
    lines = [f"netns del {name}" for name in names if name in existing]
    _ip_batch(lines, what="deleting host network namespaces")


def delete_bridge() -> None:
    if bridge_exists():
        run(["ip", "link", "del", BRIDGE], what=f"deleting bridge {BRIDGE}")


def release_netns_dir() -> None:
    """Undo the bind mount `ip netns add` puts on /run/netns, once no namespace is left in it."""
    if not NETNS_DIR.is_dir() or any(NETNS_DIR.iterdir()):
        return
    # A bind mount of a directory onto itself: os.path.ismount cannot see it, /proc/mounts can.
    while _is_mountpoint(NETNS_DIR):
        run(["umount", str(NETNS_DIR)], what=f"unmounting {NETNS_DIR}")


def _is_mountpoint(path: Path) -> bool:
    mountpoints = (line.split()[1] for line in Path("/proc/mounts").read_text().splitlines())
    return str(path) in mountpoints


def list_netns() -> list[str]:
    """The lab's network namespaces (by name) that exist on this machine."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(NETNS_PREFIX))


def list_links() -> list[str]:
    """The lab's links (bridge and host-side veths) in the root namespace."""
    return sorted(
        name for name in os.listdir("/sys/class/net")
        if name == BRIDGE or name.startswith(VETH_PREFIX)
    )


def netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


def wait_for_veths_gone(timeout: float = 3.0, only: set[str] | None = None) -> list[str]:
    """Namespace teardown is asynchronous in the kernel: veths linger a moment after `netns del`.

    Returns the lab's veths (or those named in `only`) still there after `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        links = [name for name in list_links() if name != BRIDGE and (only is None or name in only)]
        if not links or time.monotonic() >= deadline:
            return links
        time.sleep(0.02)


def processes_in_netns(names: Iterable[str]) -> list[int]:
    """Pids of live processes inside the given network namespaces (one pass over /proc)."""
    wanted = {f"net:[{inode}]" for name in names if (inode := netns_inode(name)) is not None}
    if not wanted:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") in wanted:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def fit_neighbour_table(hosts: int, saved: Path, sysctl_dir: Path = NEIGH_SYSCTL_DIR) -> None:
    """Raise the ARP table's gc thresholds so that `hosts` entries plus headroom fit; never lower them.

    The values found first are kept in `saved` (once, across several `up`s) for restore_neighbour_table.
    """
    try:
        current = [int((sysctl_dir / f"gc_thresh{n}").read_text()) for n in (1, 2, 3)]
    except FileNotFoundError:
        # Only the machine's first network namespace shows these (they are machine-wide): inside a
        # container's own namespace they are not there to raise, and the container's host owns them.
        return
    if hosts <= current[0]:  # below thresh1 the kernel does not even collect: a small lab leaves them alone
        return
    wanted = [max(value, hosts + headroom) for value, headroom in zip(current, NEIGH_HEADROOM)]
    if not saved.exists():
        saved.write_text(json.dumps(current) + "\n")
    for n in (3, 2, 1):  # the kernel wants thresh1 <= thresh2 <= thresh3 at every step
        (sysctl_dir / f"gc_thresh{n}").write_text(f"{wanted[n - 1]}\n")


def restore_neighbour_table(saved: Path, sysctl_dir: Path = NEIGH_SYSCTL_DIR) -> None:
    """Put back the gc thresholds fit_neighbour_table found, if it changed them."""
    try:
        previous = json.loads(saved.read_text())
    except (OSError, ValueError):
        return
    for n in (1, 2, 3):
        (sysctl_dir / f"gc_thresh{n}").write_text(f"{previous[n - 1]}\n")
    saved.unlink()


def _ip_batch(lines: list[str], *, what: str) -> None:
    if lines:
        run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", what=what)


def _check_index(index: int) -> None:
    if not 1 <= index <= MAX_HOSTS:
        raise LabError(f"host index {index} is out of range: the lab has at most {MAX_HOSTS} hosts")
