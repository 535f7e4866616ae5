"""The docker side of a Vagrant test lab: what `vagrant up --provider=docker` needs on this machine.

`up` starts our own dockerd (agent/lab/dockerd.py), the lab's services (installer mirror, partner
emulator) on its bridge address 198.19.0.1, where the containers reach them (their default route is
this machine), and imports the box image from the lab's rootfs. Then Vagrant makes the machines.
`down` removes any container Vagrant left, stops the services and dockerd and removes the bridge:
nothing of it stays on the machine. One such lab per machine (one bridge, one subnet); it runs
beside the netns labs, which use 198.18.0.0/16 and bridges of their own.

The lab directory gets `env` (shell lines: DOCKER_HOST, PATH with Debian's docker first,
VAGRANT_DEFAULT_PROVIDER=docker) and `vars.yaml` (the inventory vars that point ispagent at the
lab's services, for `ispagent inventory from-vagrant --vars`).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab import services, slots
from agent.lab.commands import require_root
from agent.lab.dockerd import BRIDGE, BRIDGE_ADDRESS, DockerDaemon, bridge_exists
from agent.lab.rootfs import CACHE_DIR, ensure_rootfs
from agent.lab.vagrant_box import IMAGE, ensure_image

RECORD = slots.MACHINE_STATE / "vagrant-docker-lab"  # which directory's dockerd owns the bridge
ENV_FILE = "env"
VARS_FILE = "vars.yaml"
BOX_VARS = {"edition": "lite", "period": "monthly", "release": "stable"}


@dataclass(frozen=True)
class DockerLabUp:
    started_dockerd: bool
    built_image: bool
    services: tuple[str, ...]
    seconds: float
    env_file: Path
    vars_file: Path


class VagrantDockerLab:
    """The docker side of the Vagrant lab whose state lives in `dir`."""

    def __init__(self, dir: Path | str, *, cache_dir: Path = CACHE_DIR) -> None:
        self.dir = Path(dir).absolute()
        self.cache_dir = cache_dir
        self.daemon = DockerDaemon(self.dir / "docker")

    @property
    def env_file(self) -> Path:
        return self.dir / ENV_FILE

    @property
    def vars_file(self) -> Path:
        return self.dir / VARS_FILE

    def env(self) -> dict[str, str]:
        """What Vagrant and docker need in their environment (PATH: Debian's docker first)."""
        return {**self.daemon.env(), "VAGRANT_DEFAULT_PROVIDER": "docker"}

    def up(self, progress=None) -> DockerLabUp:
        """Start dockerd and the lab's services and build the box image, each unless it is there."""
        say = progress or (lambda message: None)
        require_root()
        began = time.monotonic()
        with slots.machine_lock():
            self._claim_bridge()
            rootfs = ensure_rootfs(self.cache_dir, progress=say)
            self.dir.mkdir(parents=True, exist_ok=True)
            started = self.daemon.start()
            say(
                f"dockerd {'started' if started else 'already running'} on {self.daemon.socket} (bridge {BRIDGE},"
                f" {BRIDGE_ADDRESS})"
            )
            running = services.start_services(self.dir, BRIDGE_ADDRESS)
            built = ensure_image(self.daemon, rootfs, BRIDGE_ADDRESS, self.dir)
            say(f"{IMAGE} {'imported from ' + str(rootfs) if built else 'already there'}")
            self._write_client_files()
        return DockerLabUp(started, built, tuple(running), time.monotonic() - began, self.env_file, self.vars_file)

    def down(self, progress=None) -> list[str]:
        """Remove every container of our dockerd, stop the services and dockerd, remove the bridge.
        Returns the names of the containers removed (Vagrant's own `destroy` leaves none)."""
        say = progress or (lambda message: None)
        require_root()
        with slots.machine_lock():
            removed = self._remove_containers()
            if removed:
                say(f"removed {len(removed)} containers `vagrant destroy` had not: {', '.join(removed)}")
            services.stop_services(self.dir, BRIDGE_ADDRESS)
            self.daemon.stop()
            if _recorded_dir() == self.dir:
                RECORD.unlink(missing_ok=True)
        left = leftovers(self.dir)
        if left:
            raise LabError(f"the Vagrant docker lab in {self.dir} left {'; '.join(left)}")
        return removed

    def containers(self) -> list[str]:
        """Names of the containers our dockerd has (running or not)."""
        if self.daemon.pid() is None:
            return []
        return self.daemon.docker("ps", "-a", "--format", "{{.Names}}").split()

    def _remove_containers(self) -> list[str]:
        names = self.containers()
        if names:
            self.daemon.docker("rm", "-f", "-v", *names, what="removing containers")
        return names

    def _claim_bridge(self) -> None:
        owner = _recorded_dir()
        if owner is not None and owner != self.dir and DockerDaemon(owner / "docker").pid() is not None:
            raise LabError(
                f"the Vagrant docker lab of this machine is up in {owner}: take it down first with"
                f" `ispagent lab docker down --dir {owner}`"
            )
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        write_scratch_file(RECORD, f"{self.dir}\n")

    def _write_client_files(self) -> None:
        env = {**self.env(), "PATH": str(self.daemon.bin_dir)}
        lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        lines[list(env).index("PATH")] += ':"$PATH"'  # Debian's docker first, the caller's PATH kept
        write_scratch_file(self.env_file, "# . this file before running vagrant in the lab\n" + "\n".join(lines) + "\n")
        lab_vars = {**BOX_VARS, **services.inventory_vars(self.dir, BRIDGE_ADDRESS)}
        write_scratch_file(self.vars_file, yaml.safe_dump(lab_vars, sort_keys=False))


def leftovers(lab_dir: Path) -> list[str]:
    """What of a Vagrant docker lab is still on the machine: dockerd, its bridge, services, mounts."""
    left = []
    if DockerDaemon(lab_dir / "docker").pid() is not None:
        left.append("dockerd running")
    if bridge_exists():
        left.append(f"bridge {BRIDGE}")
    if services.serving_on(BRIDGE_ADDRESS):
        left.append(f"lab services on {BRIDGE_ADDRESS}")
    prefix = f"{lab_dir}/"
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(prefix)
    ]
    if mounts:
        left.append(f"mounts {', '.join(mounts[:3])}")
    return left


def _recorded_dir() -> Path | None:
    try:
        text = RECORD.read_text().strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None
