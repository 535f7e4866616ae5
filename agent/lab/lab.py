"""A lab: N Debian 12 hosts on this machine, each in its own namespaces with sshd as PID 1.

Labs side by side: each lab directory that is up has a slot on the machine (agent/lab/slots.py),
and with it its own bridge, addresses and namespace and interface names (network.LabNetwork). The
lab directory holds its state (lab.json), the per-host overlay layers and the files clients need.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab import client_files, mounts, network, services, slots
from agent.lab import profiles as host_profiles
from agent.lab.commands import SYSTEM_PATH, require_root, require_tools
from agent.lab.host import (
    HostPaths,
    LabHost,
    check_rootfs,
    console_tail,
    has_exited,
    init_pid,
    is_running,
    kill_host,
    prepare_host,
    sshd_listening,
    start_host,
    wait_gone,
)
from agent.lab.network import LabNetwork
from agent.lab.rootfs import CACHE_DIR, ensure_rootfs

NEIGH_SAVED = (
    slots.MACHINE_STATE / "neigh-gc-thresh.json"
)  # the ARP table limits found before the first lab raised them
STATE_FILE = "lab.json"
STATE_VERSION = 2  # 2: each host records its slot; version 1 (one lab per machine) is read as slot 0
READABLE_STATE_VERSIONS = (1, 2)
READY_TIMEOUT = 20.0  # seconds, plus READY_TIMEOUT_PER_HOST for each host being started
READY_TIMEOUT_PER_HOST = 0.2
KILL_TIMEOUT = 5.0
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "mount", "umount", "mknod", "tar", "zstd")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    up: bool
    pid: int | None  # the unshare parent, which `down` kills
    init_pid: int | None  # the host's PID 1 (sshd), as seen from the root PID namespace


@dataclass(frozen=True)
class UpResult:
    hosts: tuple[str, ...]
    started: tuple[str, ...]  # new hosts, and dead ones restarted
    stopped: tuple[str, ...]  # hosts beyond the requested count
    seconds: float
    inventory: Path


@dataclass(frozen=True)
class DownResult:
    stopped: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class LabSummary:
    """One lab up on this machine, as `ispagent lab status` lists them."""

    slot: int
    dir: Path | None  # None: the slot's network is there but no lab directory is recorded for it
    bridge: str
    network: str
    bridge_address: str
    hosts: int  # recorded in the lab directory's lab.json
    hosts_up: int
    owner_pid: int | None  # the process that last brought it up
    owner_alive: bool


class Lab:
    """The lab whose state lives in `dir`."""

    def __init__(self, dir: Path | str, *, cache_dir: Path = CACHE_DIR) -> None:
        self.dir = Path(dir).absolute()
        self.cache_dir = cache_dir

    @property
    def inventory_path(self) -> Path:
        return self.dir / client_files.INVENTORY

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / client_files.KNOWN_HOSTS

    @property
    def ssh_config_path(self) -> Path:
        return self.dir / client_files.SSH_CONFIG

    @property
    def identity_file(self) -> Path:
        return self.dir / client_files.IDENTITY_FILE

    @property
    def slot(self) -> int | None:
        """The lab's slot on this machine, while it is up (or was left up by a killed process)."""
        record = slots.record_of(self.dir)
        return record.slot if record else None

    @property
    def network(self) -> LabNetwork:
        """The lab's bridge, addresses and names. Raises LabError when the lab is not up."""
        slot = self.slot
        if slot is None:
            raise LabError(f"no lab is up in {self.dir}: run `ispagent lab up --dir {self.dir}`")
        return LabNetwork(slot)

    @property
    def bridge_address(self) -> str:
        """Where the lab's hosts reach its services (mirror, partner emulator)."""
        return self.network.bridge_address

    @property
    def hosts(self) -> list[LabHost]:
        """The hosts recorded in lab.json, by index."""
        return self._load()

    def host(self, name: str) -> LabHost:
        for host in self._load():
            if host.name == name:
                return host
        raise LabError(f"the lab in {self.dir} has no host {name!r}")

    def up(self, hosts: int, progress: Progress | None = None, profiles: dict[str, str] | None = None) -> UpResult:
        """Make the lab have exactly `hosts` running hosts, h1..hN, and wait until each accepts SSH.

        Running hosts are left alone, dead ones are restarted (keeping their disk and host key),
        missing ones are created, and hosts beyond N are stopped and removed. `profiles` maps host
        names to agent/lab/profiles.py profiles; a host whose profile changes (given or not) is
        recreated from scratch.
        """
        profiles = dict(profiles or {})
        host_profiles.check_profiles(profiles)
        say = progress or (lambda message: None)
        require_root()
        require_tools(*REQUIRED_TOOLS)
        if not 1 <= hosts <= network.MAX_HOSTS:
            raise LabError(f"--hosts must be between 1 and {network.MAX_HOSTS}, not {hosts}")
        began = time.monotonic()
        with slots.machine_lock():
            recorded = {host.index: host for host in self._load()}
            net = self._claim_slot(recorded.values())
            rootfs = ensure_rootfs(self.cache_dir, progress=say)
            check_rootfs(rootfs)
            self.dir.mkdir(parents=True, exist_ok=True)
            mounts.prepare_hosts_dir(self.dir / "hosts", say)
            client_key = client_files.ensure_client_key(self.dir)

            extra = [host for index, host in recorded.items() if index > hosts]
            if extra:
                say(f"stopping {len(extra)} hosts beyond h{hosts}")
                self._stop(extra, slot=net.slot)
                for host in extra:
                    shutil.rmtree(HostPaths.of(self.dir, host.name).dir, ignore_errors=True)

            wanted = [recorded.get(index) or LabHost.numbered(index, net.slot) for index in range(1, hosts + 1)]
            wanted = [self._with_profile(host, profiles.get(host.name), net.slot) for host in wanted]
            to_start = [host for host in wanted if not is_running(host)]
            say(
                f"starting {len(to_start)} hosts ({hosts - len(to_start)} already running) on {net.bridge}"
                f" ({net.network})"
            )
            self._stop(to_start, slot=net.slot)  # leftovers of dead hosts, if any
            if any(host.slot != net.slot for host in wanted):
                # Dead hosts of a lab that got another slot (after a reboot, its old one was taken): new names.
                wanted = [_in_slot(host, net.slot) for host in wanted]
                to_start = [host for host in wanted if not is_running(host)]
                self._stop(to_start, slot=net.slot)
            net.ensure_bridge()
            others = len(network.list_lab_netns()) - len(net.list_netns())  # other labs' hosts share the ARP table
            network.fit_neighbour_table(hosts + others, NEIGH_SAVED)
            net.add_hosts(host.index for host in to_start)
            for host in to_start:
                paths = HostPaths.of(self.dir, host.name)
                prepare_host(host, paths, rootfs, client_key)
                host_profiles.apply_profile(
                    host.profile,
                    host.name,
                    host.index,
                    host.address,
                    paths.upper,
                    paths.profile,
                    rootfs,
                    license_url=services.license_url(net.bridge_address),
                )
                start_host(host, paths, rootfs)
            self._save(wanted)  # before waiting: a failed start must still be stoppable by `down`
            say(f"waiting for sshd on {len(to_start)} hosts")
            self._wait_ready(to_start)
            host_profiles.write_mirror_faults(self.dir, wanted)
            services.start_services(self.dir, net.bridge_address)
            client_files.write_client_files(self.dir, wanted, net.bridge_address)
        return UpResult(
            hosts=tuple(host.name for host in wanted),
            started=tuple(host.name for host in to_start),
            stopped=tuple(host.name for host in extra),
            seconds=time.monotonic() - began,
            inventory=self.inventory_path,
        )

    def restart(self, name: str) -> LabHost:
        """Power-cycle host `name`: every process in it killed at once (SIGKILL, no shutdown), its
        /run and /dev (tmpfs) gone, its network namespace recreated (so firewall and traffic-shaping
        rules go too), then booted again from the same disk and waited for until sshd accepts.

        What a reboot keeps is what a real Debian 12 server keeps: the overlay disk, /tmp included.
        """
        require_root()
        with slots.machine_lock():
            hosts = self._load()
            host = next((h for h in hosts if h.name == name), None)
            if host is None:
                raise LabError(f"the lab in {self.dir} has no host {name!r}")
            strays = network.processes_in_netns([host.netns])  # e.g. `ip netns exec` commands
            self._stop([host], slot=self.network.slot)
            _kill_and_wait(strays)
            host.network.add_hosts([host.index])
            start_host(host, HostPaths.of(self.dir, host.name), ensure_rootfs(self.cache_dir))
            self._save(hosts)
            self._wait_ready([host])
        return host

    def status(self) -> list[HostStatus]:
        """Each recorded host and whether it runs. Reads only /proc: works without root."""
        return [
            HostStatus(
                name=host.name,
                address=host.address,
                up=is_running(host),
                pid=host.pid if is_running(host) else None,
                init_pid=init_pid(host) if is_running(host) else None,
            )
            for host in self._load()
        ]

    def down(self, progress: Progress | None = None) -> DownResult:
        """Stop every host and remove the lab's namespaces, links, mounts and host disks.

        Raises LabError naming whatever is still left afterwards.
        """
        say = progress or (lambda message: None)
        require_root()
        require_tools("ip", "umount", "rm")
        began = time.monotonic()
        with slots.machine_lock():
            record = slots.record_of(self.dir)
            hosts = self._load()
            net = self._network_to_remove(record, hosts)
            say(f"stopping {len(hosts)} hosts")
            self._stop(hosts, slot=None)  # their network goes with the slot's, below
            services.stop_services(self.dir, net.bridge_address if net else None)
            shutil.rmtree(self.dir / "services", ignore_errors=True)
            if net is not None:
                say(f"removing the network ({net.bridge}, {net.network})")
                self._remove_network(net)
            _unmount_under(self.dir, net)
            leftovers = self._leftovers(hosts, net)
            if leftovers:
                raise LabError(f"lab down left {leftovers}: remove them by hand")
            say(f"removing {len(hosts)} host disks (in the background)")
            _discard_host_disks(self.dir)
            client_files.remove_client_files(self.dir)
            (self.dir / STATE_FILE).unlink(missing_ok=True)
            if record is not None:
                slots.release(record.slot, self.dir)
        return DownResult(stopped=tuple(h.name for h in hosts), seconds=time.monotonic() - began)

    def exec(
        self, name: str, argv: Sequence[str], *, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside host `name`'s namespaces and root, without SSH (for tests and debugging)."""
        pid = init_pid(self.host(name))
        if pid is None:
            raise LabError(f"{name} is not running: run `ispagent lab up --dir {self.dir}`")
        return subprocess.run(
            # --root: in a chroot the host's root is not its mount namespace's root (host_init.sh).
            ["nsenter", "--target", str(pid), "--all", "--root", "--", *argv],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8"},
        )

    # -- internals ---------------------------------------------------------------------------

    def _claim_slot(self, recorded: Iterable[LabHost]) -> LabNetwork:
        """The lab's slot, taken if it has none: the one its hosts had (their addresses stay) if free."""
        preferred = next((host.slot for host in recorded), None)
        net = LabNetwork(slots.claim(self.dir, preferred))
        running_elsewhere = [host.name for host in recorded if host.slot != net.slot and is_running(host)]
        if running_elsewhere:
            raise LabError(
                f"hosts {', '.join(running_elsewhere)} of the lab in {self.dir} run in slot {preferred}, which this"
                f" machine no longer records for it: run `ispagent lab down --dir {self.dir}`, then up again"
            )
        return net

    @staticmethod
    def _network_to_remove(record: slots.SlotRecord | None, hosts: Sequence[LabHost]) -> LabNetwork | None:
        """The slot `down` clears: the lab's recorded one or, when its record is gone (removed by hand),
        the slot its hosts are in, as long as no other lab directory is recorded there."""
        if record is not None:
            return LabNetwork(record.slot)
        slot = hosts[0].slot if hosts else None
        if slot is None or slot in {other.slot for other in slots.records()} or not LabNetwork(slot).in_use():
            return None
        return LabNetwork(slot)

    def _with_profile(self, host: LabHost, profile: str | None, slot: int) -> LabHost:
        """`host` if its profile is `profile`, else a fresh host of that profile (the old one removed)."""
        if host.profile == profile:
            return host
        self._stop([host], slot=slot)
        shutil.rmtree(HostPaths.of(self.dir, host.name).dir, ignore_errors=True)
        fresh = LabHost.numbered(host.index, slot)
        fresh.profile = profile
        return fresh

    def _stop(self, hosts: Sequence[LabHost], *, slot: int | None) -> None:
        """Kill the hosts (by pid) and delete the network namespaces of those recorded in `slot`, the
        lab's: the names of a host recorded in another slot may be another lab's by now."""
        for host in hosts:
            kill_host(host)
        stuck = wait_gone([h.pid for h in hosts if h.pid], KILL_TIMEOUT)
        if stuck:
            raise LabError(f"processes {stuck} of the lab did not die after SIGKILL")
        in_slot = [host for host in hosts if host.slot == slot]
        if in_slot:
            network.delete_netns(host.netns for host in in_slot)
            LabNetwork(in_slot[0].slot).wait_for_veths_gone(only={host.veth for host in in_slot})

    def _remove_network(self, net: LabNetwork) -> None:
        """Remove everything of the lab's slot: processes still inside its namespaces (e.g. its state
        file was lost), the namespaces, veths and bridge; then what labs share, once no lab is left."""
        _kill_and_wait(network.processes_in_netns(net.list_netns()))
        network.delete_netns(net.list_netns())
        net.wait_for_veths_gone()
        net.delete_bridge()
        network.release_netns_dir()
        if not network.list_lab_netns():
            network.restore_neighbour_table(NEIGH_SAVED)

    def _wait_ready(self, hosts: Sequence[LabHost]) -> None:
        timeout = READY_TIMEOUT + READY_TIMEOUT_PER_HOST * len(hosts)
        deadline = time.monotonic() + timeout
        pending = list(hosts)
        while pending:
            for host in pending:
                if has_exited(host):
                    paths = HostPaths.of(self.dir, host.name)
                    raise LabError(f"{host.name} stopped while starting: see {paths.console} ({console_tail(paths)})")
            pending = [host for host in pending if not (sshd_listening(host) and _accepts_tcp(host))]
            if pending and time.monotonic() > deadline:
                host = pending[0]
                raise LabError(
                    f"{host.name} ({host.address}) did not accept SSH on port 22 within {timeout:.0f} s:"
                    f" see its console log {HostPaths.of(self.dir, host.name).console}"
                )
            if pending:
                time.sleep(0.02)

    def _leftovers(self, hosts: Sequence[LabHost], net: LabNetwork | None) -> str:
        found = []
        namespaces = net.list_netns() if net else []
        pids = [h.pid for h in hosts if h.pid] + network.processes_in_netns(namespaces)
        if net is not None:
            pids += services.serving_on(net.bridge_address)
        alive = wait_gone(pids, 0)
        if alive:
            found.append(f"processes {alive}")
        if namespaces:
            found.append(f"network namespaces {namespaces}")
        if net is not None:
            links = net.wait_for_veths_gone(timeout=0) + [name for name in net.list_links() if name == net.bridge]
            if links:
                found.append(f"links {links}")
        mounts = _mounts_under(self.dir, net)
        if mounts:
            found.append(f"mounts {mounts}")
        return ", ".join(found)

    def _load(self) -> list[LabHost]:
        path = self.dir / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except json.JSONDecodeError as error:
            raise LabError(f"{path} is not valid JSON ({error}): run `ispagent lab down --dir {self.dir}`") from None
        if state.get("version") not in READABLE_STATE_VERSIONS:
            raise LabError(
                f"{path} was written by another version of ispagent (state version {state.get('version')},"
                f" expected {STATE_VERSION}): stop its hosts with that version's `ispagent lab down`"
            )
        return sorted((LabHost(**host) for host in state["hosts"]), key=lambda h: h.index)

    def _save(self, hosts: Sequence[LabHost]) -> None:
        state = {"version": STATE_VERSION, "hosts": [asdict(host) for host in hosts]}
        write_scratch_file(self.dir / STATE_FILE, json.dumps(state, indent=2) + "\n")


def labs_on_machine() -> list[LabSummary]:
    """The labs up on this machine, by slot: every slot recorded for a lab directory (a lab whose
    process was killed included), and any slot whose network is there with no directory recorded.
    Reads only /run and /proc: works without root."""
    summaries = []
    for record in slots.records():
        statuses = Lab(record.dir).status() if record.dir.is_dir() else []
        summaries.append(
            _summary(
                record.slot,
                record.dir,
                len(statuses),
                sum(s.up for s in statuses),
                record.owner_pid,
                record.owner_alive,
            )
        )
    for slot in slots.unrecorded_in_use():
        namespaces = len(LabNetwork(slot).list_netns())
        summaries.append(_summary(slot, None, namespaces, namespaces, None, False))
    return sorted(summaries, key=lambda summary: summary.slot)


def _summary(
    slot: int, lab_dir: Path | None, hosts: int, hosts_up: int, owner_pid: int | None, owner_alive: bool
) -> LabSummary:
    net = LabNetwork(slot)
    return LabSummary(
        slot, lab_dir, net.bridge, str(net.network), net.bridge_address, hosts, hosts_up, owner_pid, owner_alive
    )


def _accepts_tcp(host: LabHost) -> bool:
    try:
        with socket.create_connection((host.address, 22), timeout=2):
            return True
    except OSError:
        return False


def _in_slot(host: LabHost, slot: int) -> LabHost:
    """`host` renumbered into `slot` (its disk kept), for a dead host of a lab that got another slot
    (e.g. after a reboot its old one was taken)."""
    if host.slot == slot:
        return host
    return replace(host, slot=slot, address=LabNetwork(slot).host_address(host.index), pid=None, start_time=None)


def _mounts_under(path: Path, net: LabNetwork | None) -> list[str]:
    """Mounts under the lab directory, and the bind mounts of its slot's network namespaces."""
    prefixes = [str(path) + "/"] + ([f"{network.NETNS_DIR}/{net.netns_prefix}"] if net else [])
    mounts = []
    for line in Path("/proc/mounts").read_text().splitlines():
        mountpoint = line.split()[1].replace("\\040", " ")
        if any(mountpoint.startswith(prefix) for prefix in prefixes):
            mounts.append(mountpoint)
    return mounts


TRASH_PREFIX = ".removing-"
_removers: list[subprocess.Popen] = []  # kept so they are reaped, not collected while running


def _discard_host_disks(lab_dir: Path) -> subprocess.Popen | None:
    """Move the hosts' directories aside at once and remove them in the background.

    After an install flow a thousand hosts' overlay layers hold hundreds of thousands of files:
    removing them took 67 s of a 77 s `down` on this machine's ext4 (mounted with discard). Nothing
    of the lab runs or is mounted there any more, so `down` need not wait; a removal cut short
    (the machine rebooted) is taken up again by the next `down`. Returns the remover, for tests.
    """
    hosts_dir = lab_dir / "hosts"
    if hosts_dir.exists():
        hosts_dir.rename(lab_dir / f"{TRASH_PREFIX}{os.getpid()}-{time.time_ns()}")
    _removers[:] = [remover for remover in _removers if remover.poll() is None]
    trash = sorted(str(path) for path in lab_dir.glob(f"{TRASH_PREFIX}*"))
    if not trash:
        return None
    remover = subprocess.Popen(
        ["rm", "-rf", "--one-file-system", *trash],
        env={"PATH": SYSTEM_PATH},
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _removers.append(remover)
    return remover


def _unmount_under(path: Path, net: LabNetwork | None) -> None:
    for mountpoint in sorted(_mounts_under(path, net), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], capture_output=True, env={"PATH": SYSTEM_PATH})


def _kill_and_wait(pids: list[int]) -> None:
    """SIGKILL each of `pids` (one already gone is fine) and wait until they are all gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(pids, KILL_TIMEOUT)
