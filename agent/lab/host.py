"""One lab host: its files on disk (overlay upper layer, console log) and its process tree.

A host is `nsenter --net=/run/netns/NS unshare ... host_init.sh`, detached in its own session. The
`unshare` parent stays in the root PID namespace (its pid is what we record); its only child is the
host's PID 1, which ends up being sshd. (Not `ip netns exec`: it makes / a slave mount first, which
fails in a chroot; the host's own mount namespace needs none of what it sets up.)
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab import mounts, network, services
from agent.lab.commands import SYSTEM_PATH
from agent.lab.keys import generate_ed25519
from agent.lab.network import LabNetwork
from agent.lab.rootfs import DEPLOY_USER

DOMAIN = "lab.example"
INIT_SCRIPT = Path(__file__).with_name("host_init.sh")
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
SSH_PORT_HEX = "0016"
TCP_LISTEN = "0A"

# Popen objects of hosts this process started, so they are reaped when killed (no zombies, and no
# ResourceWarning from a Popen collected while its child still runs).
_started: dict[int, subprocess.Popen] = {}


@dataclass
class LabHost:
    """A host as recorded in lab.json."""

    name: str
    index: int
    address: str
    pid: int | None = None  # the `unshare` parent, in the root PID namespace
    start_time: int | None = None  # its start time in clock ticks: guards against a reused pid
    profile: str | None = None  # agent/lab/profiles.py: which installer rule the host breaks
    slot: int = 0  # the lab's slot on the machine (network.LabNetwork); absent from lab.json version 1

    @classmethod
    def numbered(cls, index: int, slot: int) -> LabHost:
        return cls(name=f"h{index}", index=index, address=LabNetwork(slot).host_address(index), slot=slot)

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DOMAIN}"

    @property
    def network(self) -> LabNetwork:
        return LabNetwork(self.slot)

    @property
    def netns(self) -> str:
        return self.network.netns_name(self.index)

    @property
    def veth(self) -> str:
        """The bridge side of the host's veth pair, in the root namespace."""
        return self.network.veth_name(self.index)


@dataclass(frozen=True)
class HostPaths:
    dir: Path

    @classmethod
    def of(cls, lab_dir: Path, name: str) -> HostPaths:
        return cls(lab_dir / "hosts" / name)

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def profile(self) -> Path:
        """Files of the host's profile that host_init.sh bind-mounts (e.g. a fake meminfo)."""
        return self.dir / "profile"

    @property
    def host_public_key(self) -> Path:
        return self.upper / f"{HOST_KEY}.pub"


def prepare_host(host: LabHost, paths: HostPaths, rootfs: Path, client_public_key: str) -> None:
    """Write the host's own files into its overlay upper layer.

    An existing host key and machine id are kept, so a restarted host keeps its identity (and the
    lab's known_hosts stays right).
    """
    for directory in (paths.work, paths.root):
        directory.mkdir(parents=True, exist_ok=True)
    upper = paths.upper
    upper.mkdir(parents=True, exist_ok=True)
    upper.chmod(0o755)
    deploy_home = f"home/{DEPLOY_USER}"
    for rel in ("etc", "etc/ssh", "root", "root/.ssh", "home", deploy_home, f"{deploy_home}/.ssh"):
        _mkdir_like_lower(rootfs, upper, rel)

    _mkdir_like_lower(rootfs, upper, "etc/apt")
    # apt (and install.sh's first apt step) gets the distribution's packages from the lab's mirror.
    distribution = services.distribution_url(host.network.bridge_address)
    write_scratch_file(upper / "etc/apt/sources.list", f"deb {distribution} bookworm main\n")
    write_scratch_file(upper / "etc/hostname", f"{host.name}\n")
    write_scratch_file(upper / "etc/hosts", _etc_hosts(host))
    if not (upper / "etc/machine-id").exists():
        write_scratch_file(upper / "etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
    if not (upper / HOST_KEY).exists():
        key = generate_ed25519(f"root@{host.fqdn}")
        write_scratch_file(upper / HOST_KEY, key.private_openssh.decode(), 0o600)
        write_scratch_file(upper / f"{HOST_KEY}.pub", key.public_openssh + "\n")
    authorized = client_public_key.strip() + "\n"
    write_scratch_file(upper / "root/.ssh/authorized_keys", authorized, 0o600)
    deploy = (rootfs / deploy_home).stat()
    write_scratch_file(
        upper / f"{deploy_home}/.ssh/authorized_keys", authorized, 0o600, owner=(deploy.st_uid, deploy.st_gid)
    )


def start_host(host: LabHost, paths: HostPaths, rootfs: Path) -> None:
    """Start the host detached (it outlives this process); record its pid and start time on `host`."""
    argv = [
        "nsenter",
        f"--net={network.NETNS_DIR / host.netns}",
        "unshare",
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        mounts.host_propagation(),
        "/bin/sh",
        str(INIT_SCRIPT),
        str(rootfs),
        str(paths.upper),
        str(paths.work),
        str(paths.root),
        host.name,
        f"{host.address}/{host.network.prefixlen}",
    ]
    if host.profile:
        argv.append(str(paths.profile))
    with open(paths.console, "ab") as console:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
            env={"PATH": SYSTEM_PATH, "LAB_ROOT_SWITCH": mounts.host_root_switch()},
            cwd="/",
        )
    _started[process.pid] = process
    host.pid = process.pid
    host.start_time = process_start_time(process.pid)


def is_running(host: LabHost) -> bool:
    """True when the host's unshare parent and its PID 1 are both alive."""
    return _is_ours(host) and init_pid(host) is not None


def init_pid(host: LabHost) -> int | None:
    """The host's PID 1 as seen from the root PID namespace, or None."""
    if host.pid is None:
        return None
    try:
        children = Path(f"/proc/{host.pid}/task/{host.pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    live = [int(pid) for pid in children if _state(int(pid)) not in (None, "Z")]
    return live[0] if live else None


def sshd_listening(host: LabHost) -> bool:
    """Whether sshd listens on port 22 inside the host, read from its /proc (no packet sent: an
    early connect to an address not yet up would leave a failed ARP entry that stalls later ones)."""
    pid = init_pid(host)
    if pid is None:
        return False
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            return False
        for line in lines:
            fields = line.split()
            if fields[1].endswith(":" + SSH_PORT_HEX) and fields[3] == TCP_LISTEN:
                return True
    return False


def has_exited(host: LabHost) -> bool:
    return not _is_ours(host)


def kill_host(host: LabHost) -> None:
    """SIGKILL the unshare parent (it ignores SIGTERM); --kill-child then takes the whole PID
    namespace, and with it the host's mounts."""
    if _is_ours(host):
        try:
            os.kill(host.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reap(host: LabHost) -> None:
    process = _started.pop(host.pid, None) if host.pid else None
    if process is not None:
        process.wait()


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait for processes to end; zombies count as ended (this machine's PID 1 reaps lazily)."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in [pid for pid in pids if pid in _started]:
            if _started[pid].poll() is not None:
                del _started[pid]
        alive = [pid for pid in pids if _state(pid) not in (None, "Z")]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def console_tail(paths: HostPaths, lines: int = 3) -> str:
    try:
        text = paths.console.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(text[-lines:])


def process_start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _is_ours(host: LabHost) -> bool:
    if host.pid is None:
        return False
    fields = _stat_fields(host.pid)
    return bool(fields) and fields[0] != "Z" and int(fields[19]) == host.start_time


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [0] is the state, [19] the start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _etc_hosts(host: LabHost) -> str:
    return (
        "127.0.0.1\tlocalhost\n"
        f"{host.address}\t{host.fqdn}\t{host.name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
    )


def _mkdir_like_lower(lower: Path, upper: Path, rel: str) -> None:
    """Create a directory in the upper layer with the lower one's owner and mode: in an overlay the
    upper directory's metadata wins, and sshd's StrictModes rejects a wrong ~/.ssh or home."""
    source = (lower / rel).stat()
    target = upper / rel
    target.mkdir(exist_ok=True)
    os.chown(target, source.st_uid, source.st_gid)
    target.chmod(source.st_mode & 0o7777)


def check_rootfs(rootfs: Path) -> None:
    if not (rootfs / "usr/sbin/sshd").exists():
        raise LabError(f"the rootfs {rootfs} has no sshd: remove it so it is rebuilt with openssh-server")
