"""The local lab: hosts reachable over strictly verified SSH, isolated, idempotent, cleanly removed."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paramiko
import pytest
import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from agent.errors import LabError
from agent.inventory.loader import load_inventory
from agent.lab import Lab, LabHost, commands, labs_on_machine, network, rootfs, services, slots
from agent.lab.network import LabNetwork

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def ssh(lab: Lab, host: LabHost, user: str = "root", known_hosts: Path | None = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        username=user,
        key_filename=str(lab.identity_file),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    status = stdout.channel.recv_exit_status()
    assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()}"
    return output.strip()


def lab_namespaces(net: LabNetwork) -> list[str]:
    """The namespaces of the lab in `net`'s slot, as `ip` lists them (not as the lab's own code does)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(net.netns_prefix)]


def lab_links(net: LabNetwork) -> list[str]:
    listed = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in listed.splitlines()]
    return [name for name in names if name == net.bridge or name.startswith(net.veth_prefix)]


def assert_nothing_left(net: LabNetwork, lab_dir: Path, pids: list[int]) -> None:
    """Nothing of the lab that was in `net`'s slot and `lab_dir` is left on the machine."""
    assert lab_namespaces(net) == []
    assert lab_links(net) == []
    mounts = Path("/proc/mounts").read_text()
    assert str(lab_dir) not in mounts and f"/run/netns/{net.netns_prefix}" not in mounts
    assert [pid for pid in pids if alive(pid)] == []
    assert services.serving_on(net.bridge_address) == []
    assert not (lab_dir / "hosts").exists()


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
        "edition": "lite",
        "period": "monthly",
        "release": "stable",
    }
    assert {name: entry["address"] for name, entry in inventory["hosts"].items()} == {
        host.name: host.address for host in lab.hosts
    }
    assert inventory["hosts"]["h1"] == {"address": lab.network.host_address(1), "vars": {"fqdn": "h1.lab.example"}}


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
        capture_output=True,
        text=True,
        timeout=30,
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
    assert [line for line in effective if line.startswith("hostkey ")] == ["hostkey /etc/ssh/ssh_host_ed25519_key"]


@pytest.mark.lab
def test_each_host_has_its_own_network_and_pid_namespace_with_sshd_as_pid_1(lab: Lab) -> None:
    seen: dict[str, set[str]] = {"net": set(), "pid": set()}
    for host in lab.hosts:
        with ssh(lab, host) as client:
            assert run(client, "cat /proc/1/comm") == "sshd"
            assert f"inet {host.address}/{lab.network.prefixlen}" in run(client, "ip -o -4 addr show dev eth0")
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
    assert not {lab.network.netns_name(count + 1), lab.network.netns_name(count + 2)} & set(lab_namespaces(lab.network))
    assert lab.network.host_address(count + 1) + " " not in lab.known_hosts_path.read_text()


def reach(lab: Lab, name: str, address: str, port: int) -> bool:
    """Whether host `name` of `lab` opens a TCP connection to address:port, tried from inside the host."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2).close()"
    return lab.exec(name, ["python3", "-c", probe]).returncode == 0


def ispagent_process(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own, which exits when done (as a user's `ispagent lab up` does)."""
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.lab
def test_a_second_lab_runs_beside_the_sessions_on_its_own_bridge_and_goes_down_leaving_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    second = Lab(tmp_path / "second")
    up = ispagent_process("lab", "up", "--hosts", "2", "--dir", str(second.dir))  # left up by a process that is gone
    try:
        assert up.returncode == 0, up.stderr
        first_net, second_net = lab.network, second.network
        assert first_net.slot != second_net.slot and first_net.bridge != second_net.bridge
        assert not first_net.network.overlaps(second_net.network)
        for each, net in ((lab, first_net), (second, second_net)):
            assert all(ipaddress.ip_address(host.address) in net.network for host in each.hosts)
            with ssh(each, each.hosts[0]) as client:
                assert run(client, "hostname -f") == "h1.lab.example"
                assert f"inet {each.hosts[0].address}/{net.prefixlen}" in run(client, "ip -o -4 addr show dev eth0")
            # Its hosts get its own mirror and partner emulator, on its own bridge, and not the other lab's.
            script = urllib.request.urlopen(f"http://{net.bridge_address}:8080/install.sh", timeout=10).read().decode()
            assert f"http://{net.bridge_address}:8443" in script
            other = second_net if each is lab else first_net
            assert reach(each, "h1", net.bridge_address, 8080) and not reach(each, "h1", other.bridge_address, 8080)
        listed = {summary.dir: summary for summary in labs_on_machine()}
        assert (listed[lab.dir].slot, listed[second.dir].slot) == (first_net.slot, second_net.slot)
        assert (listed[second.dir].hosts_up, listed[second.dir].owner_alive) == (2, False)
        status = ispagent_process("lab", "status")
        assert str(lab.dir) in status.stdout and str(second.dir) in status.stdout and second_net.bridge in status.stdout
        with slots.machine_lock():  # a third directory is given neither slot, though the second's owner is gone
            third = slots.claim(tmp_path / "third")
            slots.release(third, tmp_path / "third")
        assert third not in (first_net.slot, second_net.slot)
        pids = [pid for status in second.status() for pid in (status.pid, status.init_pid)]
    finally:
        down = ispagent_process("lab", "down", "--dir", str(second.dir))
    assert down.returncode == 0, down.stderr
    assert_nothing_left(second_net, second.dir, pids)
    assert second.slot is None and second.dir not in {summary.dir for summary in labs_on_machine()}
    assert all(status.up for status in lab.status())  # the session's lab is untouched
    with ssh(lab, lab.hosts[0]) as client:
        assert run(client, "hostname") == "h1"


@pytest.mark.lab
def test_a_lab_whose_slot_record_was_removed_by_hand_is_listed_and_still_taken_down_by_its_directory(
    lab: Lab, tmp_path: Path
) -> None:
    lost = Lab(tmp_path / "lost")
    lost.up(1)
    net = lost.network
    pids = [pid for status in lost.status() for pid in (status.pid, status.init_pid)]
    (slots.LABS_DIR / str(net.slot)).unlink()
    if net.slot == 0:
        slots.LEGACY_LAB_DIR.unlink(missing_ok=True)
    try:
        assert lost.slot is None
        assert {summary.slot: summary.dir for summary in labs_on_machine()}[net.slot] is None
    finally:
        lost.down()
    assert_nothing_left(net, lost.dir, pids)
    assert net.slot not in {summary.slot for summary in labs_on_machine()}


@pytest.mark.lab
def test_down_leaves_no_namespace_veth_mount_or_process(lab: Lab) -> None:
    statuses = lab.status()
    pids = [pid for status in statuses for pid in (status.pid, status.init_pid)]
    net = lab.network
    try:
        lab.down()
        assert_nothing_left(net, lab.dir, pids)
        assert lab.status() == []
        assert lab.slot is None
    finally:
        lab.up(len(statuses))  # the session's other tests still need it


# -- without the lab ------------------------------------------------------------------------------


def test_without_root_the_cli_fails_with_one_line() -> None:
    argv = ["lab", "up", "--hosts", "1", "--dir", "/nonexistent/lab"]
    if os.geteuid() == 0:
        # Really drop root: a patched geteuid would not show the rest of the command path is safe. A user
        # namespace where we are nobody has no privilege over the machine's namespaces, mounts or links,
        # yet still reads the checkout: a checkout under /root (0700) is closed to the real nobody.
        done = subprocess.run(
            ["unshare", "--user", "--map-user=65534", "--map-group=65534", sys.executable, "-m", "agent", *argv],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=60,
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


def test_slot_0_keeps_the_names_and_addresses_of_one_lab_per_machine() -> None:
    net = LabNetwork(0)
    assert (net.bridge, net.bridge_address, net.bridge_mac) == ("ispagent0", "198.18.0.1", "02:15:18:00:00:01")
    assert (net.host_address(1), net.host_address(251), net.host_address(1000)) == (
        "198.18.0.2",
        "198.18.1.2",
        "198.18.3.251",
    )
    assert (net.netns_name(7), net.veth_name(7), net.host_mac(258)) == ("ispagent-h7", "ispv7", "02:15:18:01:01:02")


def test_every_slot_has_its_own_addresses_names_and_macs_inside_the_benchmark_range() -> None:
    benchmark, docker = ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("198.19.0.0/24")
    seen: dict[str, set[str]] = {"address": set(), "mac": set(), "netns": set(), "link": set()}
    for slot in range(network.MAX_SLOTS):
        net = LabNetwork(slot)
        assert net.network.subnet_of(benchmark) and not net.network.overlaps(docker)
        indices = range(1, network.MAX_HOSTS + 1)
        addresses = [net.host_address(i) for i in indices] + [net.bridge_address]
        assert all(
            ipaddress.ip_address(a) in net.network and a.rsplit(".", 1)[1] not in ("0", "255") for a in addresses
        )
        names = {
            "address": addresses,
            "mac": [net.host_mac(i) for i in indices] + [net.bridge_port_mac(i) for i in indices] + [net.bridge_mac],
            "netns": [net.netns_name(i) for i in indices],
            "link": [net.veth_name(i) for i in indices] + [net.bridge],
        }
        for kind, values in names.items():
            assert len(set(values)) == len(values) and not seen[kind] & set(values), (slot, kind)
            seen[kind].update(values)
        assert max(len(name) for name in names["link"]) <= 15  # IFNAMSIZ - 1
        # An older ispagent takes every namespace named ispagent-* and link named ispv* for its own.
        if slot:
            assert not any(name.startswith("ispagent-") for name in names["netns"])
            assert not any(name.startswith("ispv") for name in names["link"])
        assert all(network.ANY_LAB_NETNS.fullmatch(name) for name in names["netns"])
        # A slot's teardown lists its own names by prefix: no other slot's name may match (ispagent1- vs ispagent10-).
        for other in (LabNetwork(o) for o in range(network.MAX_SLOTS) if o != slot):
            assert not any(name.startswith(other.netns_prefix) for name in names["netns"]), (slot, other.slot)
            assert not any(network._is_veth_of(name, other.veth_prefix) for name in names["link"]), (slot, other.slot)
    with pytest.raises(LabError, match="at most 1000"):
        LabNetwork(1).host_address(1001)
    with pytest.raises(LabError, match="there are 32 slots"):
        LabNetwork(network.MAX_SLOTS)


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
