"""The lab's network: one bridge in the root namespace, one network namespace and veth pair per host.

Labs side by side: each lab on the machine has a slot (agent/lab/slots.py) and with it its own
bridge, /21 of 198.18.0.0/16 (the benchmark range) and names (LabNetwork). The bridge holds the
first address of the /21, where the lab's own services listen; hosts reach nothing else (no NAT,
no forwarding), not even another lab's hosts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import LabError
from agent.lab.commands import run

# Each lab on the machine sits in a slot: its own bridge, /21 and names (see LabNetwork).
MAX_SLOTS = 32
SLOT_PREFIXLEN = 21
LAB_RANGE = ipaddress.ip_network("198.18.0.0/16")  # 32 slots of /21; 198.19.0.0/24 stays free for Docker
MAX_HOSTS = 1000
HOSTS_PER_24 = 250
NETNS_DIR = Path("/run/netns")
NEIGH_SYSCTL_DIR = Path("/proc/sys/net/ipv4/neigh/default")
# The root namespace's ARP table holds every lab host the control node talks to. Linux's defaults
# (gc_thresh1/2/3 = 128/512/1024) overflow near 1000 hosts: "neighbor table overflow!" in dmesg,
# and connects fail with EHOSTUNREACH, which reads as unreachable hosts.
NEIGH_HEADROOM = (128, 512, 1024)  # room kept above the lab's own entries, for the machine's other neighbours
# Every lab network namespace on the machine, of any slot: ispagent-h3 (slot 0), ispagent7-h3 (slot 7).
ANY_LAB_NETNS = re.compile(r"ispagent\d*-h\d+")


@dataclass(frozen=True)
class LabNetwork:
    """The names and addresses of the lab in slot `slot`.

    Slot k has 198.18.(8k).0/21: the bridge at .1, host n at 198.18.(8k + (n-1) // 250).((n-1) % 250 + 2),
    so 1000 hosts fill four of its eight /24s. Slot 0 keeps the names and addresses of the days of one
    lab per machine (bridge ispagent0, namespaces ispagent-hN, veths ispvN): a lab of an older
    ispagent is slot 0, and the names of other slots never match what that version lists and removes
    (it takes every namespace named ispagent-* and every link named ispv* for its own).
    """

    slot: int

    def __post_init__(self) -> None:
        if not 0 <= self.slot < MAX_SLOTS:
            raise LabError(f"lab slot {self.slot} is out of range: there are {MAX_SLOTS} slots (0-{MAX_SLOTS - 1})")

    @property
    def network(self) -> ipaddress.IPv4Network:
        base = int(LAB_RANGE.network_address) + (self.slot << (32 - SLOT_PREFIXLEN))
        return ipaddress.ip_network(f"{ipaddress.ip_address(base)}/{SLOT_PREFIXLEN}")

    @property
    def prefixlen(self) -> int:
        return SLOT_PREFIXLEN

    @property
    def bridge(self) -> str:
        return f"ispagent{self.slot}"

    @property
    def bridge_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def bridge_mac(self) -> str:
        return self._mac(0, 1)

    @property
    def netns_prefix(self) -> str:
        return "ispagent-" if self.slot == 0 else f"ispagent{self.slot}-"

    @property
    def veth_prefix(self) -> str:
        return "ispv" if self.slot == 0 else f"isp{self.slot}v"

    def host_address(self, index: int) -> str:
        """Host 1 at the bridge's address + 1, 250 hosts per /24: slot 0's host 1000 is 198.18.3.251."""
        _check_index(index)
        n = index - 1
        third = self.network.network_address.packed[2] + n // HOSTS_PER_24
        return f"198.18.{third}.{n % HOSTS_PER_24 + 2}"

    def host_mac(self, index: int) -> str:
        """The host side (eth0) MAC. Fixed per slot and index: a new random MAC behind an address the
        bridge still has in its ARP cache stalls connections for 15-35 s after a host is recreated."""
        _check_index(index)
        return self._mac(1, index)

    def bridge_port_mac(self, index: int) -> str:
        _check_index(index)
        return self._mac(2, index)

    def netns_name(self, index: int) -> str:
        return f"{self.netns_prefix}h{index}"

    def veth_name(self, index: int) -> str:
        return f"{self.veth_prefix}{index}"

    def ensure_bridge(self) -> None:
        """Create the bridge with its fixed MAC and address, unless it is already there."""
        if self.bridge_exists():
            return
        _ip_batch(
            [
                f"link add {self.bridge} address {self.bridge_mac} type bridge",
                f"addr add {self.bridge_address}/{self.prefixlen} dev {self.bridge}",
                f"link set {self.bridge} up",
            ],
            what=f"creating bridge {self.bridge}",
        )

    def bridge_exists(self) -> bool:
        return Path(f"/sys/class/net/{self.bridge}").exists()

    def add_hosts(self, indices: Iterable[int]) -> None:
        """Create each host's network namespace and veth pair in one `ip -batch` (one process for all).

        The host side is created directly inside the namespace as eth0 and stays down: the host's init
        script gives it its address and brings it up.
        """
        lines = []
        for index in indices:
            ns, veth = self.netns_name(index), self.veth_name(index)
            lines += [
                f"neigh flush dev {self.bridge} to {self.host_address(index)}",
                f"netns add {ns}",
                f"link add {veth} address {self.bridge_port_mac(index)} type veth"
                f" peer name eth0 address {self.host_mac(index)} netns {ns}",
                f"link set {veth} master {self.bridge} up",
            ]
        _ip_batch(lines, what="creating host network namespaces")

    def delete_bridge(self) -> None:
        if self.bridge_exists():
            run(["ip", "link", "del", self.bridge], what=f"deleting bridge {self.bridge}")

    def list_netns(self) -> list[str]:
        """This slot's network namespaces (by name) that exist on this machine."""
        return [name for name in list_lab_netns() if name.startswith(self.netns_prefix)]

    def list_links(self) -> list[str]:
        """This slot's links (bridge and host-side veths) in the root namespace."""
        return sorted(
            name for name in os.listdir("/sys/class/net") if name == self.bridge or _is_veth_of(name, self.veth_prefix)
        )

    def wait_for_veths_gone(self, timeout: float = 3.0, only: set[str] | None = None) -> list[str]:
        """Namespace teardown is asynchronous in the kernel: veths linger a moment after `netns del`.

        Returns this slot's veths (or those named in `only`) still there after `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            links = [name for name in self.list_links() if name != self.bridge and (only is None or name in only)]
            if not links or time.monotonic() >= deadline:
                return links
            time.sleep(0.02)

    def in_use(self) -> bool:
        """Whether anything of this slot exists on the machine: its bridge, a namespace or a veth."""
        return bool(self.list_netns()) or bool(self.list_links())

    def _mac(self, kind: int, index: int) -> str:
        # 02:15:18 in slot 0, as before slots; then 02:15:19, 02:15:1a... (locally administered).
        return f"02:15:{0x18 + self.slot:02x}:{kind:02x}:{index >> 8:02x}:{index & 0xFF:02x}"


def _is_veth_of(name: str, prefix: str) -> bool:
    return name.startswith(prefix) and name[len(prefix) :].isdigit()


def list_lab_netns() -> list[str]:
    """Every lab's network namespaces (by name) on this machine, of any slot."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if ANY_LAB_NETNS.fullmatch(p.name))


def delete_netns(names: Iterable[str]) -> None:
    """Delete namespaces (their veths go with them); names already gone are skipped."""
    existing = set(list_lab_netns())
    lines = [f"netns del {name}" for name in names if name in existing]
    _ip_batch(lines, what="deleting host network namespaces")


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


def netns_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


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
