"""Debian's dockerd, run by us for Vagrant's docker provider: private socket and data root, no iptables.

No systemd here, and nothing of the machine's own Docker (if any) is touched: our dockerd has its own
socket, data root, exec root and containerd (which it starts itself under the exec root), storage
driver vfs (works on any filesystem, also inside a container), `--iptables=false --ip-masq=false
--ip-forward=false` (no NAT, no forwarding: containers reach this machine's own addresses only) and
a bridge we create, ispdock0 with 198.19.0.1/24. Never 172.17.0.0/16 (Docker's default), and never
the netns labs' 198.18.0.0/16 (agent/lab/network.py keeps 198.19.0.0/24 free for this). Ports Vagrant
forwards are served by docker-proxy on loopback.

The docker client is always Debian's /usr/bin/docker: another `docker` may come earlier on PATH.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import LabError
from agent.lab.commands import SYSTEM_PATH, run

DOCKER = Path("/usr/bin/docker")
DOCKERD = Path("/usr/sbin/dockerd")
BRIDGE = "ispdock0"
BRIDGE_NETWORK = ipaddress.ip_network("198.19.0.0/24")
BRIDGE_ADDRESS = str(BRIDGE_NETWORK.network_address + 1)
# Networks dockerd makes itself (e.g. for a Vagrantfile's private_network) come from here too.
ADDRESS_POOL = "base=198.19.0.0/16,size=24"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class DockerDaemon:
    """Our dockerd, whose socket, pid file, log and data live under `dir`."""

    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host_url(self) -> str:
        """What DOCKER_HOST must say for docker and Vagrant to talk to this daemon."""
        return f"unix://{self.socket}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.dir / "dockerd.log"

    @property
    def bin_dir(self) -> Path:
        """A directory whose `docker` is Debian's, to put first on PATH for Vagrant (which runs `docker`)."""
        return self.dir / "bin"

    def env(self) -> dict[str, str]:
        """The environment docker and Vagrant need to use this daemon and Debian's docker client."""
        return {"DOCKER_HOST": self.host_url, "PATH": f"{self.bin_dir}:{SYSTEM_PATH}", "DOCKER_BUILDKIT": "0"}

    def pid(self) -> int | None:
        """The pid of this daemon while it runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_dockerd(pid) else None

    def start(self) -> bool:
        """Start the daemon unless it runs; wait until it answers. True if it was started now."""
        if self.pid() is not None:
            return False
        for tool in (DOCKER, DOCKERD):
            if not tool.exists():
                raise LabError(
                    f"the Vagrant docker lab needs Debian's {tool}, which is missing: apt-get install docker.io"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin_dir.mkdir(exist_ok=True)
        link = self.bin_dir / "docker"
        if not link.is_symlink():
            link.symlink_to(DOCKER)
        ensure_bridge()
        with open(self.log, "ab") as log:
            process = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={"PATH": SYSTEM_PATH},
                cwd="/",
            )
        self._wait_ready(process)
        return True

    def stop(self) -> None:
        """Stop the daemon (its containerd and containers go with it) and remove its bridge."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, STOP_TIMEOUT):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        delete_bridge()

    def docker(self, *args: str, input: bytes | None = None, what: str | None = None) -> str:
        """Run Debian's docker client against this daemon; a failure is a LabError with docker's last line."""
        env = dict(os.environ, **self.env())
        done = subprocess.run([str(DOCKER), *args], input=input, capture_output=True, env=env, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {done.returncode}"
            raise LabError(f"{what or 'docker ' + ' '.join(args[:2])} failed: {last}")
        return done.stdout.decode(errors="replace")

    def _argv(self) -> list[str]:
        return [
            str(DOCKERD),
            "--host",
            self.host_url,
            "--pidfile",
            str(self.pid_file),
            "--data-root",
            str(self.dir / "data"),
            "--exec-root",
            str(self.dir / "exec"),
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--bridge",
            BRIDGE,
            "--default-address-pool",
            ADDRESS_POOL,
        ]

    def _wait_ready(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(f"dockerd exited ({process.returncode}): see {self.log}")
            if self.socket.exists() and _answers(self):
                return
            time.sleep(0.2)
        raise LabError(f"dockerd did not answer on {self.socket} within {READY_TIMEOUT:.0f} s: see {self.log}")


def ensure_bridge() -> None:
    """Create ispdock0 with 198.19.0.1/24 unless it is there."""
    if bridge_exists():
        return
    run(
        ["ip", "-batch", "-"],
        input=(
            f"link add {BRIDGE} type bridge\n"
            f"addr add {BRIDGE_ADDRESS}/{BRIDGE_NETWORK.prefixlen} dev {BRIDGE}\n"
            f"link set {BRIDGE} up\n"
        ),
        what=f"creating bridge {BRIDGE}",
    )


def delete_bridge() -> None:
    if bridge_exists():
        run(["ip", "link", "del", BRIDGE], what=f"deleting bridge {BRIDGE}")


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def _answers(daemon: DockerDaemon) -> bool:
    try:
        daemon.docker("version", "--format", "{{.Server.Version}}")
    except LabError:
        return False
    return True


def _is_dockerd(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and command.endswith(b"dockerd")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_dockerd(pid):
            return True
        time.sleep(0.1)
    return False
