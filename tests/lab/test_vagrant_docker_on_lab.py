"""Vagrant for real: `vagrant up --provider=docker` of two Debian 12 machines, the main job over them.

Debian's vagrant 2.3.4 and docker.io, our own dockerd (`ispagent lab docker up`), the lab's partner
emulator and installer mirror on its bridge; `vagrant ssh-config | ispagent inventory from-vagrant`,
then `ispagent run playbooks/install.yaml` twice. Torn down with `vagrant destroy` and `ispagent lab
docker down`, after which nothing of it is left on the machine. Independent of the session's netns
lab (it runs beside it: another bridge, 198.19.0.0/24).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from vagrantkit import DOMAIN, VagrantDockerSession, leftovers

from agent.lab.dockerd import BRIDGE_NETWORK, DOCKER

pytestmark = pytest.mark.lab

MACHINES = 2


@pytest.fixture(scope="module")
def vagrant_lab(tmp_path_factory: pytest.TempPathFactory):
    reason = None
    if os.geteuid() != 0:
        reason = "the Vagrant docker lab needs root (dockerd, a bridge)"
    elif not DOCKER.exists():
        reason = "Debian's docker.io is not installed: bash .ci/setup installs it"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI={os.environ['CI']}: {reason}")
        pytest.skip(reason)
    session = VagrantDockerSession(tmp_path_factory.mktemp("vagrant-docker"), MACHINES)
    try:
        up = session.lab_up()
        assert up.returncode == 0, up.stderr
        machines = session.vagrant("up", "--provider=docker")
        assert machines.returncode == 0, machines.stdout[-2000:] + machines.stderr
        made = session.from_vagrant()
        assert made.returncode == 0, made.stderr
        yield session
    finally:
        destroyed = session.vagrant("destroy", "-f")
        containers = session.docker("ps", "-a", "-q").stdout.split()
        networks = session.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        container_mounts = [
            line
            for line in Path("/proc/mounts").read_text().splitlines()
            if f"{session.lab_dir}/docker/data/containers/" in line
        ]
        down = session.lab_down()
    assert destroyed.returncode == 0, destroyed.stderr
    assert containers == [], "vagrant destroy left containers"
    assert sorted(networks) == ["bridge", "host", "none"], "vagrant made a docker network (a bridge) and left it"
    assert container_mounts == [], "vagrant destroy left container mounts"
    assert down.returncode == 0 and "0 containers removed" in down.stdout, down.stdout + down.stderr
    assert leftovers(session) == []


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_install_over_vagrant_machines_licenses_once_and_rerun_changes_nothing(vagrant_lab, tmp_path):
    checked = vagrant_lab.ispagent("inventory", "check", "-i", str(vagrant_lab.inventory))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    first = vagrant_lab.run("install.yaml", "--report-json", str(tmp_path / "first.json"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    report = _report(tmp_path / "first.json")
    assert report["summary"]["changed"] == MACHINES
    assert {host["name"] for host in report["hosts"]} == set(vagrant_lab.names)
    assert {host["license"]["action"] for host in report["hosts"]} == {"ordered"}
    licenses = {host["name"]: host["license"]["id"] for host in report["hosts"]}
    for host in report["hosts"]:
        # The machines' own addresses on our bridge, as the partner account sees them.
        assert host["preflight"]["primary_ipv4"].startswith(str(BRIDGE_NETWORK.network_address)[:-1])
        assert host["preflight"]["hostname"] == f"{host['name']}.{DOMAIN}"

    second = vagrant_lab.run("install.yaml", "--report-json", str(tmp_path / "second.json"))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    again = _report(tmp_path / "second.json")
    assert again["summary"] == {**again["summary"], "ok": MACHINES, "changed": 0, "failed": 0}
    assert {host["license"]["action"] for host in again["hosts"]} == {"existing"}
    assert {host["name"]: host["license"]["id"] for host in again["hosts"]} == licenses

    account = vagrant_lab.ispagent("licenses", "list", "-i", str(vagrant_lab.inventory), "--json")
    assert account.returncode == 0, account.stderr
    assert sorted(str(entry["id"]) for entry in json.loads(account.stdout)) == sorted(licenses.values())
    for name, licid in licenses.items():
        # Checked through docker, not through our own transport: the panel runs with the license bought.
        panel = vagrant_lab.on_machine(name, "/usr/local/mgr5/sbin/licctl info ispmgr; hostname -f")
        assert f"ID: {licid}\n" in panel.stdout and f"{name}.{DOMAIN}" in panel.stdout, panel.stdout + panel.stderr


def test_host_key_change_across_destroy_and_up_is_refused_until_from_vagrant_runs_again(vagrant_lab):
    machine = vagrant_lab.names[-1]
    known_hosts = vagrant_lab.vagrant_dir / "known_hosts.vagrant"
    smoke = vagrant_lab.run("smoke.yaml", "--limit", machine)
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr
    endpoint = _endpoint(vagrant_lab.inventory, machine)
    key_before = _key(known_hosts, endpoint)

    recreated = vagrant_lab.vagrant("destroy", "-f", machine)
    assert recreated.returncode == 0, recreated.stderr
    recreated = vagrant_lab.vagrant("up", "--provider=docker", machine)
    assert recreated.returncode == 0, recreated.stdout[-2000:] + recreated.stderr

    # The old inventory and known_hosts: accept-new still refuses a changed key.
    stale = vagrant_lab.run("smoke.yaml", "--limit", machine)
    assert stale.returncode == 1, stale.stdout[-2000:] + stale.stderr
    assert "host key changed" in stale.stdout and "Traceback" not in stale.stdout + stale.stderr

    made = vagrant_lab.from_vagrant()
    assert made.returncode == 0 and "forgot" in made.stderr, made.stderr
    fresh = vagrant_lab.run("smoke.yaml", "--limit", machine)
    assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr
    assert _endpoint(vagrant_lab.inventory, machine) == endpoint  # the same forwarded port: a stale entry
    assert _key(known_hosts, endpoint) not in (None, key_before)


def _endpoint(inventory: Path, machine: str) -> str:
    host = yaml.safe_load(inventory.read_text())["hosts"][machine]
    return f"[{host['address']}]:{host['port']}"


def _key(known_hosts: Path, endpoint: str) -> str | None:
    keys = [line.split()[2] for line in known_hosts.read_text().splitlines() if line.split()[:1] == [endpoint]]
    return keys[-1] if keys else None


def test_a_second_docker_lab_is_refused_in_one_line_while_one_is_up(vagrant_lab, tmp_path):
    other = tmp_path / "other-lab"
    refused = vagrant_lab.ispagent("lab", "docker", "up", "--dir", str(other))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr == (
        f"ispagent: error: the Vagrant docker lab of this machine is up in {vagrant_lab.lab_dir}:"
        f" take it down first with `ispagent lab docker down --dir {vagrant_lab.lab_dir}`\n"
    )
    assert not (other / "docker").exists()
    # The first lab is untouched: its machines still answer.
    smoke = vagrant_lab.run("smoke.yaml")
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr
