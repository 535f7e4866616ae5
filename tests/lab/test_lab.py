"""The local lab: hosts reachable over strictly verified SSH, isolated, idempotent, cleanly removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest
import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from agent.errors import LabError
from agent.inventory.loader import load_inventory
from agent.lab import Lab, LabHost, network
from agent.lab import commands, rootfs

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def ssh(lab: Lab, host: LabHost, user: str = "root", known_hosts: Path | None = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address, username=user, key_filename=str(lab.identity_file),
        look_for_keys=False, allow_agent=False, timeout=10,
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    status = stdout.channel.recv_exit_status()
    assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()}"
    return output.strip()


def lab_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(network.NETNS_PREFIX)]


def lab_links() -> list[str]:
    listed = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in listed.splitlines()]
    return [name for name in names if name == network.BRIDGE or name.startswith(network.VETH_PREFIX)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # killed hosts may stay <defunct> a moment: this machine's PID 1 reaps lazily


# -- the running lab -----------------------------------------------------------------------------


@pytest.mark.lab
def test_every_host_answers_ssh_with_its_fqdn_under_strict_host_key_checking(lab: Lab) -> None:
    for host in lab.hosts:
        with ssh(lab, host) as client:
            assert run(client, "hostname -f") == f"{host.name}.lab.example"


@pytest.mark.lab
def test_inventory_lists_every_host_with_paths_relative_to_itself(lab: Lab) -> None:
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    assert inventory["ssh"] == {"known_hosts": "known_hosts", "host_key_policy": "strict"}
    assert (lab.inventory_path.parent / inventory["defaults"]["identity_file"]).is_file()
    # Lab services (agent/lab/services.py) add their own vars, e.g. installer_url.
    assert {k: v for k, v in inventory["defaults"]["vars"].items() if k in ("edition", "period", "release")} == {
        "edition": "lite", "period": "monthly", "release": "stable"}
    assert {name: entry["address"] for name, entry in inventory["hosts"].items()} == {
        host.name: host.address for host in lab.hosts
    }
    assert inventory["hosts"]["h1"] == {"address": "198.18.0.2", "vars": {"fqdn": "h1.lab.example"}}


@pytest.mark.lab
def test_inventory_loads_with_strict_host_keys_and_the_lab_key(lab: Lab) -> None:
    loaded = load_inventory(lab.inventory_path)
    assert loaded.ssh.known_hosts == lab.known_hosts_path
    assert loaded.ssh.host_key_policy == "strict"
    assert [(h.name, h.address, h.endpoint.identity_file) for h in loaded.hosts] == [
        (host.name, host.address, lab.identity_file) for host in lab.hosts
    ]
    assert loaded.host("h2").vars["fqdn"] == "h2.lab.example"


@pytest.mark.lab
def test_a_host_key_not_in_known_hosts_is_rejected(lab: Lab, tmp_path: Path) -> None:
    other_host_only = tmp_path / "known_hosts"
    other_host_only.write_text(lab.known_hosts_path.read_text().splitlines()[1] + "\n")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh(lab, lab.hosts[0], known_hosts=other_host_only)


@pytest.mark.lab
def test_openssh_client_connects_with_the_generated_ssh_config(lab: Lab) -> None:
    done = subprocess.run(
        ["ssh", "-F", str(lab.ssh_config_path), "-o", "BatchMode=yes", "h2", "id -un"],
        capture_output=True, text=True, timeout=30,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "root"), done.stderr


@pytest.mark.lab
def test_deploy_user_logs_in_by_key_and_has_passwordless_sudo(lab: Lab) -> None:
    with ssh(lab, lab.hosts[1], user="deploy") as client:
        assert run(client, "id -un") == "deploy"
        assert run(client, "sudo -n id -u") == "0"


@pytest.mark.lab
def test_sshd_allows_keys_only_and_offers_only_an_ed25519_host_key(lab: Lab) -> None:
    effective = lab.exec("h1", ["sshd", "-T"]).stdout.splitlines()
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin without-password" in effective
    assert "usedns no" in effective
    assert [line for line in effective if line.startswith("hostkey ")] == [
        "hostkey /etc/ssh/ssh_host_ed25519_key"
    ]


@pytest.mark.lab
def test_each_host_has_its_own_network_and_pid_namespace_with_sshd_as_pid_1(lab: Lab) -> None:
    seen: dict[str, set[str]] = {"net": set(), "pid": set()}
    for host in lab.hosts:
        with ssh(lab, host) as client:
            assert run(client, "cat /proc/1/comm") == "sshd"
            assert f"inet {host.address}/16" in run(client, "ip -o -4 addr show dev eth0")
            for kind in seen:
                seen[kind].add(run(client, f"readlink /proc/self/ns/{kind}"))
    for kind, namespaces in seen.items():
        assert len(namespaces) == len(lab.hosts)
        assert os.readlink(f"/proc/self/ns/{kind}") not in namespaces


@pytest.mark.lab
def test_hosts_have_their_own_root_and_do_not_share_files(lab: Lab) -> None:
    lab.exec("h1", ["sh", "-c", "echo h1 > /etc/only-on-h1"])
    assert lab.exec("h1", ["cat", "/etc/only-on-h1"]).stdout == "h1\n"
    assert lab.exec("h2", ["test", "-e", "/etc/only-on-h1"]).returncode == 1
    assert not Path("/etc/only-on-h1").exists()
    assert not (rootfs.CACHE_DIR / rootfs.ROOTFS_NAME / "etc/only-on-h1").exists()


@pytest.mark.lab
def test_up_again_leaves_running_hosts_untouched(lab: Lab) -> None:
    before = lab.status()
    result = lab.up(len(before))
    assert result.started == () and result.stopped == ()
    assert lab.status() == before


@pytest.mark.lab
def test_a_dead_host_is_restarted_with_its_host_key_and_files(lab: Lab) -> None:
    lab.exec("h3", ["sh", "-c", "echo kept > /root/marker"])
    known_hosts = lab.known_hosts_path.read_text()
    count = len(lab.hosts)
    os.kill(lab.status()[2].init_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while lab.status()[2].up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lab.status()[2].up

    result = lab.up(count)

    assert result.started == ("h3",)
    assert lab.known_hosts_path.read_text() == known_hosts
    with ssh(lab, lab.host("h3")) as client:
        assert run(client, "cat /root/marker") == "kept"


@pytest.mark.lab
def test_growing_adds_hosts_and_shrinking_removes_them(lab: Lab) -> None:
    count = len(lab.hosts)
    new = (f"h{count + 1}", f"h{count + 2}")
    grown = lab.up(count + 2)
    try:
        assert grown.started == new
        with ssh(lab, lab.host(new[1])) as client:
            assert run(client, "hostname -f") == f"{new[1]}.lab.example"
    finally:
        shrunk = lab.up(count)
    assert shrunk.stopped == new
    assert [host.name for host in lab.hosts] == [f"h{i}" for i in range(1, count + 1)]
    assert not {f"ispagent-{name}" for name in new} & set(lab_namespaces())
    assert network.host_address(count + 1) + " " not in lab.known_hosts_path.read_text()


@pytest.mark.lab
def test_a_second_lab_in_another_dir_is_refused_naming_the_running_one(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(LabError) as refused:
        Lab(tmp_path / "second").up(1)
    assert str(lab.dir) in str(refused.value)
    assert f"ispagent lab down --dir {lab.dir}" in str(refused.value)
    assert not (tmp_path / "second").exists()


@pytest.mark.lab
def test_down_leaves_no_namespace_veth_mount_or_process(lab: Lab) -> None:
    statuses = lab.status()
    pids = [pid for status in statuses for pid in (status.pid, status.init_pid)]
    try:
        lab.down()
        assert lab_namespaces() == []
        assert lab_links() == []
        mounts = Path("/proc/mounts").read_text()
        assert str(lab.dir) not in mounts and "/run/netns/ispagent-" not in mounts
        assert [pid for pid in pids if alive(pid)] == []
        assert lab.status() == []
        assert not (lab.dir / "hosts").exists()
    finally:
        lab.up(len(statuses))  # the session's other tests still need it


# -- without the lab ------------------------------------------------------------------------------


def test_without_root_the_cli_fails_with_one_line() -> None:
    argv = ["lab", "up", "--hosts", "1", "--dir", "/nonexistent/lab"]
    if os.geteuid() == 0:
        # Really drop root: a patched geteuid would not show the rest of the command path is safe.
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "agent", *argv],
            capture_output=True, text=True, cwd="/", timeout=60,
        )
        exit_code, stderr = done.returncode, done.stderr
    else:
        result = CliRunner().invoke(cli, argv)
        exit_code, stderr = result.exit_code, result.stderr
    assert exit_code == 1
    assert stderr == "ispagent: error: the lab needs root (network namespaces, mounts): run as root\n"


def test_a_missing_tool_is_named_with_its_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands.shutil, "which", lambda tool, path=None: None)
    with pytest.raises(LabError, match=r"`debootstrap`.*apt-get install debootstrap"):
        commands.require_tools("debootstrap")
    with pytest.raises(LabError, match=r"`ip`.*apt-get install iproute2"):
        commands.require_tools("ip")


def test_host_addresses_are_unique_in_the_lab_range_and_skip_the_bridge() -> None:
    addresses = [network.host_address(i) for i in range(1, network.MAX_HOSTS + 1)]
    assert addresses[:2] == ["198.18.0.2", "198.18.0.3"]
    assert network.host_address(251) == "198.18.1.2"
    assert len(set(addresses)) == network.MAX_HOSTS
    assert network.BRIDGE_ADDRESS not in addresses
    assert all(address.rsplit(".", 1)[1] not in ("0", "1", "255") for address in addresses)
    macs = [network.host_mac(i) for i in range(1, network.MAX_HOSTS + 1)]
    assert len(set(macs)) == network.MAX_HOSTS
    with pytest.raises(LabError, match="at most 1000"):
        network.host_address(1001)


def test_an_interrupted_rootfs_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def interrupted(target: Path) -> None:
        (target / "half-made").write_text("")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rootfs.ensure_rootfs(tmp_path, populate=interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{rootfs.ROOTFS_NAME}.lock"]


def test_the_cached_archive_is_unpacked_and_leftover_builds_removed(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr/sbin").mkdir(parents=True)
    (tree / "usr/sbin/sshd").write_text("")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(
        ["tar", "--zstd", "-cf", str(cache / f"{rootfs.ROOTFS_NAME}.tar.zst"), "-C", str(tree), "."],
        check=True,
    )
    (cache / f".{rootfs.ROOTFS_NAME}.build-killed").mkdir()

    unpacked = rootfs.ensure_rootfs(cache, populate=lambda target: pytest.fail("must not rebuild"))

    assert (unpacked / "usr/sbin/sshd").is_file()
    assert not list(cache.glob(".*"))
