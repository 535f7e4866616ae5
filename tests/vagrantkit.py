"""Driving a Vagrant docker lab as a user does: `ispagent lab docker up`, `vagrant up --provider=docker`,
`vagrant ssh-config | ispagent inventory from-vagrant`, `vagrant destroy`, `ispagent lab docker down`.
Used by tests/lab/test_vagrant_docker_on_lab.py and bench/vagrant_docker.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "lab.ispagent.test"


class VagrantDockerSession:
    """A copy of vagrant/ in `work`/vagrant, with its docker lab in `work`/lab and its state in `work`/state."""

    def __init__(self, work: Path, machines: int) -> None:
        self.work = work
        self.lab_dir = work / "lab"
        self.vagrant_dir = work / "vagrant"
        self.state_dir = work / "state"
        self.inventory = self.vagrant_dir / "lab.yaml"
        self.machines = machines
        shutil.copytree(REPO / "vagrant", self.vagrant_dir, dirs_exist_ok=True)

    @property
    def names(self) -> list[str]:
        return ["debian12"] + [f"debian12-{n}" for n in range(2, self.machines + 1)]

    def env(self) -> dict[str, str]:
        from agent.lab.vagrant_docker import VagrantDockerLab

        lab_env = VagrantDockerLab(self.lab_dir).env()
        return {
            **os.environ,
            **lab_env,
            "PATH": f"{lab_env['PATH'].split(':')[0]}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ISPAGENT_VAGRANT_MACHINES": str(self.machines),
            "ISPAGENT_STATE_DIR": str(self.state_dir),
            "VAGRANT_HOME": str(self.work / "vagrant.d"),
            "VAGRANT_CHECKPOINT_DISABLE": "1",
        }

    def ispagent(self, *args: str, timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.vagrant_dir,
            input=input,
        )

    def vagrant(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/usr/bin/vagrant", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.vagrant_dir,
        )

    def docker(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["/usr/bin/docker", *args], capture_output=True, text=True, timeout=60, env=self.env())

    def lab_up(self) -> subprocess.CompletedProcess:
        return self.ispagent("lab", "docker", "up", "--dir", str(self.lab_dir), timeout=600)

    def lab_down(self) -> subprocess.CompletedProcess:
        return self.ispagent("lab", "docker", "down", "--dir", str(self.lab_dir), timeout=120)

    def from_vagrant(self) -> subprocess.CompletedProcess:
        """`vagrant ssh-config | ispagent inventory from-vagrant ... -o lab.yaml`, as the docs say."""
        config = self.vagrant("ssh-config")
        assert config.returncode == 0, config.stderr
        return self.ispagent(
            "inventory",
            "from-vagrant",
            "--domain",
            DOMAIN,
            "--vars",
            str(self.lab_dir / "vars.yaml"),
            "-o",
            str(self.inventory),
            input=config.stdout,
        )

    def run(self, playbook: str, *args: str) -> subprocess.CompletedProcess:
        return self.ispagent("run", str(REPO / "playbooks" / playbook), "-i", str(self.inventory), *args, timeout=600)

    def on_machine(self, name: str, command: str) -> subprocess.CompletedProcess:
        """Run `command` in a machine through docker, not through our SSH transport."""
        return self.docker("exec", name_of_container(self, name), "sh", "-c", command)


def name_of_container(session: VagrantDockerSession, machine: str) -> str:
    """The container id Vagrant recorded for `machine`."""
    return (session.vagrant_dir / ".vagrant" / "machines" / machine / "docker" / "id").read_text().strip()


def leftovers(session: VagrantDockerSession) -> list[str]:
    """What of the session is still on the machine after `vagrant destroy` and `lab docker down`:
    dockerd (its containers die with it), the bridge, the services, mounts under the lab."""
    from agent.lab.vagrant_docker import leftovers as lab_leftovers

    return lab_leftovers(session.lab_dir)
