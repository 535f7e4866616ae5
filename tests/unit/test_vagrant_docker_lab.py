"""The Vagrant docker lab's pure parts: the box user, the image's one layer, from-vagrant's --vars
and its forgetting of old host keys (the lab itself: tests/lab/test_vagrant_docker_on_lab.py)."""

from __future__ import annotations

import io
import ipaddress
import tarfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.lab.dockerd import BRIDGE_NETWORK, DockerDaemon
from agent.lab.network import LAB_RANGE
from agent.lab.vagrant_box import Accounts, with_box_user, write_layer
from agent.transport.hostkeys import forget_hosts

DATA = Path(__file__).parents[1] / "data" / "vagrant"
VARS = DATA / "vars.yaml"
ACCOUNTS = Accounts(
    passwd="root:x:0:0:root:/root:/bin/bash\ndeploy:x:1000:1000::/home/deploy:/bin/bash\n",
    group="root:x:0:\nsudo:x:27:deploy\ndeploy:x:1000:\n",
    shadow="root:*:19000:0:99999:7:::\ndeploy:*:19000:0:99999:7:::\n",
    gshadow="root:*::\nsudo:*::deploy\ndeploy:!::\n",
)
SSH_CONFIG = """\
Host debian12
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  IdentityFile {keys}/debian12/docker/private_key
  IdentitiesOnly yes

Host debian12-2
  HostName 127.0.0.1
  User vagrant
  Port 2200
  IdentityFile {keys}/debian12-2/docker/private_key
"""


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, prog_name="ispagent")


def test_box_user_gets_a_free_uid_its_group_and_sudo_without_a_password() -> None:
    accounts, uid = with_box_user(ACCOUNTS)
    assert uid == 1001
    assert "vagrant:x:1001:1001:Vagrant box user:/home/vagrant:/bin/bash\n" in accounts.passwd
    assert "sudo:x:27:deploy,vagrant\n" in accounts.group and "vagrant:x:1001:\n" in accounts.group
    assert "vagrant:*:" in accounts.shadow  # '*': key logins only; '!' would lock sshd out
    assert "sudo:*::deploy,vagrant\n" in accounts.gshadow
    assert with_box_user(accounts) == (accounts, 1001)  # twice changes nothing


def test_image_layer_holds_each_path_once_with_the_box_files_over_the_rootfs(tmp_path: Path) -> None:
    rootfs, extra = tmp_path / "rootfs", tmp_path / "extra"
    for directory in (rootfs / "etc/apt", rootfs / "home", extra / "etc/apt", extra / "home/vagrant/.ssh"):
        directory.mkdir(parents=True)
    (rootfs / "etc/passwd").write_text("root\n")
    (rootfs / "etc/hostname").write_text("lab\n")
    (extra / "etc/passwd").write_text("root\nvagrant\n")
    (extra / "home/vagrant/.ssh/authorized_keys").write_text("ssh-ed25519 AAAA\n")
    stream = io.BytesIO()
    write_layer(stream, rootfs, extra)
    with tarfile.open(fileobj=io.BytesIO(stream.getvalue())) as tar:
        members = tar.getmembers()
        names = [member.name for member in members]
        assert len(names) == len(set(names)), "docker import refuses duplicate paths"
        assert tar.extractfile("./etc/passwd").read() == b"root\nvagrant\n"
        assert tar.extractfile("./etc/hostname").read() == b"lab\n"
        assert "./home/vagrant/.ssh/authorized_keys" in names
        assert all(member.uname == member.gname == "" for member in members)


def test_forget_hosts_drops_only_the_named_endpoints(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "[127.0.0.1]:2222 ssh-ed25519 AAAA1\n# comment\n[127.0.0.1]:2201 ssh-ed25519 AAAA2\n"
        "web1,198.51.100.7 ssh-ed25519 AAAA3\n"
    )
    known_hosts.chmod(0o600)
    assert forget_hosts(known_hosts, {"[127.0.0.1]:2222", "198.51.100.7"}) == 2
    assert known_hosts.read_text() == "# comment\n[127.0.0.1]:2201 ssh-ed25519 AAAA2\n"
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    assert forget_hosts(tmp_path / "missing", {"x"}) == 0


def _ssh_config(tmp_path: Path) -> str:
    keys = tmp_path / ".vagrant" / "machines"
    for machine in ("debian12", "debian12-2"):
        key = keys / machine / "docker" / "private_key"
        key.parent.mkdir(parents=True)
        key.write_text("key")
    return SSH_CONFIG.format(keys=keys)


def test_from_vagrant_puts_the_lab_vars_in_defaults_and_forgets_the_machines_old_keys(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts.vagrant"
    known_hosts.write_text(
        "[127.0.0.1]:2222 ssh-ed25519 OLD1\n[127.0.0.1]:2200 ssh-ed25519 OLD2\n[127.0.0.1]:2299 ssh-ed25519 OTHER\n"
    )
    output = tmp_path / "lab.yaml"
    result = invoke(
        "inventory",
        "from-vagrant",
        "--vars",
        str(VARS),
        "--domain",
        "lab.ispagent.test",
        "-o",
        str(output),
        input=_ssh_config(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert f"forgot 2 old host keys of these machines in {known_hosts}" in result.stderr
    assert known_hosts.read_text() == "[127.0.0.1]:2299 ssh-ed25519 OTHER\n"
    document = yaml.safe_load(output.read_text())
    assert document["defaults"]["vars"] == yaml.safe_load(VARS.read_text())
    assert document["hosts"]["debian12-2"]["vars"] == {"fqdn": "debian12-2.lab.ispagent.test"}
    checked = invoke("inventory", "check", "-i", str(output))
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- edition\n- lite\n", "a vars file is a YAML mapping of names to values"),
        ("edition: [\n", "vars.yaml:2: YAML syntax error"),
        ("edition: lte\n", "'lte' is not one of lite, pro, host, business"),
    ],
)
def test_a_bad_vars_file_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(text)
    result = invoke("inventory", "from-vagrant", "--vars", str(vars_file), input=_ssh_config(tmp_path))
    assert result.exit_code == 2
    assert problem in result.stderr and result.stderr.count("\n") == 1, result.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.randoms(use_true_random=False))
def test_mutated_vars_files_give_an_inventory_or_one_line(tmp_path: Path, case) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_bytes(mutations.mutated(case, VARS.read_bytes(), "inventory", 256 * 1024))
    result = invoke("inventory", "from-vagrant", "--vars", str(vars_file), input=_ssh_config_once(tmp_path))
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("ispagent: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output


def _ssh_config_once(tmp_path: Path) -> str:
    if not (tmp_path / ".vagrant").exists():
        return _ssh_config(tmp_path)
    return SSH_CONFIG.format(keys=tmp_path / ".vagrant" / "machines")


def test_our_dockerd_is_private_and_stays_off_dockers_and_the_netns_labs_addresses(tmp_path: Path) -> None:
    daemon = DockerDaemon(tmp_path)
    argv = daemon._argv()
    assert argv[0] == "/usr/sbin/dockerd"
    for option in (
        ["--host", f"unix://{tmp_path}/docker.sock"],
        ["--data-root", f"{tmp_path}/data"],
        ["--exec-root", f"{tmp_path}/exec"],
        ["--storage-driver", "vfs"],
        ["--bridge", "ispdock0"],
    ):
        assert argv[argv.index(option[0]) + 1] == option[1]
    assert {"--iptables=false", "--ip-masq=false", "--ip-forward=false"} <= set(argv)
    assert daemon.env()["PATH"].startswith(f"{tmp_path}/bin:") and daemon.env()["DOCKER_HOST"] == daemon.host_url
    bridge = ipaddress.ip_network(BRIDGE_NETWORK)
    assert not bridge.overlaps(ipaddress.ip_network("172.17.0.0/16")) and not bridge.overlaps(LAB_RANGE)
