"""The SSH transport against real sshd hosts: sudo, bastions, quoting, uploads, timeouts."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from agent.errors import CommandTimeout, HostKeyMismatch, HostUnreachable, TransportError, UnknownHostKey
from agent.inventory import load_inventory
from agent.inventory.model import Endpoint, Host, SshSettings
from agent.secrets import forget_secrets, register_secret
from agent.transport import HostLog, SshConnector
from agent.transport import testinfra_host as testinfra_backend  # the module: pytest would collect test*()
from agent.transport.hostshell import STDIN_LIMIT

pytestmark = pytest.mark.lab


def _factory(lab, **settings) -> SshConnector:
    return SshConnector(SshSettings(known_hosts=lab.known_hosts_path, **settings))


def _host(lab, index: int = 0, **changes) -> Host:
    lab_host = lab.hosts[index]
    endpoint = Endpoint(lab_host.address, 22, changes.pop("user", "root"), lab.identity_file)
    return Host(name=lab_host.name, endpoint=endpoint, **changes)


def test_every_argv_word_reaches_the_host_unchanged(lab):
    tricky = ["it's", 'a "quoted" $HOME', "; rm -rf /tmp/nothing", "`id`", "new\nline"]
    connection = _factory(lab).connect(_host(lab))
    try:
        result = connection.run(["printf", "%s\\0", *tricky])
    finally:
        connection.close()
    assert result.stdout.split("\0")[:-1] == tricky


def test_sudo_user_runs_commands_and_uploads_as_root(lab):
    connection = _factory(lab).connect(_host(lab, user="deploy", sudo=True))
    try:
        assert connection.run("id -un").stdout.strip() == "root"
        assert connection.run("id -un", sudo=False).stdout.strip() == "deploy"
        connection.put(b"owned by root\n", "/etc/ispagent-sudo-test", 0o600)
        stat = connection.run("stat -c '%U %a' /etc/ispagent-sudo-test").stdout.strip()
    finally:
        connection.close()
    assert stat == "root 600"


@pytest.mark.parametrize("user, sudo", [("root", False), ("deploy", True)])
@pytest.mark.parametrize("size", [0, 2048, STDIN_LIMIT, STDIN_LIMIT + 1])
def test_data_reaches_the_function_on_the_host_shell_on_its_own_session_and_through_sudo(lab, user, sudo, size):
    data = bytes(range(256)) * (size // 256) + b"\0\n'%\\"[: size % 256]
    connection = _factory(lab).connect(_host(lab, user=user, sudo=sudo))
    try:
        done = connection.run("ispagent_data | sha256sum; id -un", data=data)
        connection.put(data, f"/srv/ispagent-data/{size}", 0o604, make_parents=True)
        written = connection.run(f"sha256sum < /srv/ispagent-data/{size}; stat -c '%U %a' /srv/ispagent-data/{size}")
    finally:
        connection.close()
    digest = hashlib.sha256(data).hexdigest()
    assert done.stdout.split() == [digest, "-", "root"]
    assert written.stdout.split() == [digest, "-", "root", "604"]


def test_upload_replaces_a_file_with_its_mode_and_leaves_no_staging_file(lab):
    connection = _factory(lab).connect(_host(lab))
    try:
        connection.run("rm -rf /srv/ispagent-put")
        connection.put(b"first\n", "/srv/ispagent-put/sub dir/f", 0o640, make_parents=True)
        connection.put(b"second\n", "/srv/ispagent-put/sub dir/f", 0o600)
        content = connection.run(["cat", "/srv/ispagent-put/sub dir/f"]).stdout
        listing = connection.run("stat -c '%n %a' /srv/ispagent-put/sub\\ dir/*").stdout.splitlines()
        with pytest.raises(
            TransportError, match=r"upload to /srv/ispagent-put/missing/f failed: .*/missing/f\.ispagent-"
        ):
            connection.put(b"x" * 3_000_000, "/srv/ispagent-put/missing/f")  # more than sshd's 2 MiB window
        after_failure = connection.run("ls -A /srv/ispagent-put").stdout.splitlines()
    finally:
        connection.close()
    assert content == "second\n"
    assert listing == ["/srv/ispagent-put/sub dir/f 600"]
    assert after_failure == ["sub dir"]


def test_host_behind_a_bastion_is_reached_through_it(lab):
    bastion = lab.hosts[0]
    gateway = Endpoint(bastion.address, 22, "root", lab.identity_file)
    factory = _factory(lab)
    connection = factory.connect(_host(lab, 1, gateway=gateway))
    try:
        # sshd sees the connection coming from the bastion's address, not the control machine's.
        client_ip = connection.run("echo $SSH_CLIENT").stdout.split()[0]
    finally:
        connection.close()
        factory.close()
    assert client_ip == bastion.address


def test_command_timeout_raises(lab):
    connection = _factory(lab).connect(_host(lab))
    try:
        with pytest.raises(CommandTimeout):
            connection.run("sleep 5", timeout=0.5)
    finally:
        connection.close()


def test_wrong_key_is_unreachable_with_a_clear_message(lab, tmp_path):

    other_key = tmp_path / "other"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    lab_host = lab.hosts[0]
    host = Host(lab_host.name, Endpoint(lab_host.address, 22, "root", other_key))
    with pytest.raises(HostUnreachable, match="authentication failed with .*other: check user and identity_file"):
        _factory(lab).connect(host)


def _home_with_keys(tmp_path, monkeypatch, keys: dict[str, Path | None]) -> Path:
    """A home of its own with `keys` as ~/.ssh's default key files (None: a new key, passphrase-protected),
    and no ssh-agent: as a cron job's."""
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    for name, source in keys.items():
        if source is None:
            kind = {"id_rsa": "rsa", "id_ecdsa": "ecdsa", "id_ed25519": "ed25519"}[name]
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "secret", "-f", str(ssh_dir / name)], check=True)
        else:
            (ssh_dir / name).write_bytes(source.read_bytes())
            (ssh_dir / name).chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return ssh_dir


def test_without_identity_file_a_job_without_ssh_agent_logs_in_with_the_default_key_as_ssh_does(
    lab, tmp_path, monkeypatch
):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(other)], check=True)
    # ssh's order: id_ecdsa (not authorized on the host) first, id_rsa needs a passphrase, id_ed25519 is the lab's.
    _home_with_keys(tmp_path, monkeypatch, {"id_rsa": None, "id_ecdsa": other, "id_ed25519": lab.identity_file})
    lab_host = lab.hosts[0]
    connection = _factory(lab).connect(Host(lab_host.name, Endpoint(lab_host.address, 22, "root", None)))
    try:
        assert connection.run(["hostname"]).stdout.strip() == lab_host.name
    finally:
        connection.close()


def test_without_identity_file_or_a_usable_default_key_the_error_says_what_was_offered(lab, tmp_path, monkeypatch):
    _home_with_keys(tmp_path, monkeypatch, {"id_rsa": None})
    endpoint = Endpoint(lab.hosts[0].address, 22, "root", None)
    with pytest.raises(HostUnreachable) as raised:
        _factory(lab).connect(Host(lab.hosts[0].name, endpoint))
    assert str(raised.value) == (
        f"{endpoint}: authentication failed with ssh-agent keys only "
        "(~/.ssh/id_rsa needs its passphrase: add it to ssh-agent): check user and identity_file"
    )


def _via_ssh_config(lab, tmp_path, config: str) -> Host:
    """Lab host 0 as an inventory without identity_file reads it, with `config` as its ssh config."""
    (tmp_path / "ssh_config").write_text(f"Host {lab.hosts[0].address}\n{config}")
    (tmp_path / "inventory.yaml").write_text(f"hosts: {{{lab.hosts[0].name}: {{address: {lab.hosts[0].address}}}}}\n")
    return load_inventory(tmp_path / "inventory.yaml", ssh_config=tmp_path / "ssh_config").hosts[0]


def _hostname(lab, host: Host) -> str:
    connection = _factory(lab).connect(host)
    try:
        return connection.run(["hostname"]).stdout.strip()
    finally:
        connection.close()


def test_every_identity_file_of_ssh_config_is_tried_in_turn_as_ssh_tries_them(lab, tmp_path, monkeypatch):
    """Before: only the first IdentityFile was offered, so a host that authorizes the second was refused."""
    _home_with_keys(tmp_path, monkeypatch, {})
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    host = _via_ssh_config(
        lab,
        tmp_path,
        f"  IdentityFile {tmp_path}/other\n  IdentityFile {tmp_path}/gone\n  IdentityFile {lab.identity_file}\n",
    )
    assert _hostname(lab, host) == lab.hosts[0].name


@pytest.fixture
def ssh_agent_with_lab_key(lab, tmp_path, monkeypatch):
    """A running ssh-agent holding the lab's key, as SSH_AUTH_SOCK."""
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            threading.Event().wait(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        subprocess.run(["ssh-add", "-q", str(lab.identity_file)], check=True, env={"SSH_AUTH_SOCK": str(socket_path)})
        yield
    finally:
        agent.terminate()
        agent.wait()


def test_a_passphrase_protected_identity_file_of_ssh_config_is_used_through_ssh_agent(
    lab, tmp_path, monkeypatch, ssh_agent_with_lab_key
):
    """ssh config names the lab's key in a passphrase-protected copy, ssh-agent holds it: ssh gets in,
    with or without IdentitiesOnly. Before: the run was refused ("the key is passphrase-protected ...
    leave identity_file out")."""
    protected = tmp_path / "protected"
    protected.write_bytes(lab.identity_file.read_bytes())
    protected.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret", "-f", str(protected)], check=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _hostname(lab, _via_ssh_config(lab, tmp_path, f"  IdentityFile {protected}\n")) == lab.hosts[0].name
    # Under IdentitiesOnly ssh still takes ssh-agent's copy of the named key (found by its public half,
    # which OpenSSH's format keeps unencrypted: the copy has no .pub file), and no other agent key.
    pinned = _via_ssh_config(lab, tmp_path, f"  IdentityFile {protected}\n  IdentitiesOnly yes\n")
    assert _hostname(lab, pinned) == lab.hosts[0].name
    subprocess.run(["ssh-add", "-q", "-D"], check=True, capture_output=True)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    subprocess.run(["ssh-add", "-q", str(other)], check=True, capture_output=True)
    with pytest.raises(HostUnreachable) as raised:
        _factory(lab).connect(pinned)
    assert str(raised.value) == (
        f"{pinned.endpoint}: authentication failed with no key "
        "(IdentitiesOnly yes; ~/protected needs its passphrase: add it to ssh-agent): check user and identity_file"
    )


def test_secrets_are_masked_in_the_host_log(lab, tmp_path):
    register_secret("ISP-SECRET-KEY-1234")
    try:
        log = HostLog(tmp_path / "host.log")
        connection = _factory(lab).connect(_host(lab), log)
        try:
            connection.run(["echo", "key is ISP-SECRET-KEY-1234"])
        finally:
            connection.close()
            log.close()
    finally:
        forget_secrets()
    text = (tmp_path / "host.log").read_text()
    assert "ISP-SECRET-KEY-1234" not in text and "key is ***" in text


def _known_hosts_with(lab, tmp_path, lines: list[str]):
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _lab_key_line(lab, index: int) -> str:
    address = lab.hosts[index].address
    return next(line for line in lab.known_hosts_path.read_text().splitlines() if line.split()[0] == address)


def test_unknown_host_key_is_refused_under_strict_and_nothing_is_recorded(lab, tmp_path):
    known_hosts = _known_hosts_with(lab, tmp_path, [])
    factory = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy="strict"))
    with pytest.raises(UnknownHostKey, match="is not in"):
        factory.connect(_host(lab))
    assert known_hosts.read_text() == ""


def test_accept_new_records_a_first_seen_key_and_connects(lab, tmp_path):
    known_hosts = _known_hosts_with(lab, tmp_path, [])
    factory = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy="accept-new"))
    connection = factory.connect(_host(lab))
    try:
        assert connection.run("true").ok
    finally:
        connection.close()
    assert known_hosts.read_text() == f"{_lab_key_line(lab, 0)}\n"


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_changed_host_key_is_refused_under_every_policy(lab, tmp_path, policy):
    other_key = _lab_key_line(lab, 1).split(None, 1)[1]
    known_hosts = _known_hosts_with(lab, tmp_path, [f"{lab.hosts[0].address} {other_key}"])
    factory = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy=policy))
    with pytest.raises(HostKeyMismatch, match="host key changed"):
        factory.connect(_host(lab))
    assert known_hosts.read_text() == f"{lab.hosts[0].address} {other_key}\n"


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
@pytest.mark.parametrize("also_known", [False, True], ids=["revoked-only", "and-listed"])
def test_a_revoked_host_key_is_refused_as_openssh_refuses_it(lab, tmp_path, policy, also_known):
    # The host's own key under @revoked, and (and-listed) also on a plain line for the host: OpenSSH's
    # client refuses it either way, and so does ispagent, under every policy, writing nothing.
    key = _lab_key_line(lab, 0).split(None, 1)[1]
    lines = [f"@revoked * {key}", *([f"{lab.hosts[0].address} {key}"] if also_known else [])]
    known_hosts = _known_hosts_with(lab, tmp_path, lines)
    openssh = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-i",
            str(lab.identity_file),
            f"root@{lab.hosts[0].address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert openssh.returncode == 255 and "REVOKED" in openssh.stderr, openssh.stderr
    factory = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy=policy))
    with pytest.raises(HostKeyMismatch, match=r"is revoked \(@revoked in "):
        factory.connect(_host(lab))
    assert known_hosts.read_text() == "".join(f"{line}\n" for line in lines)


def test_hosts_behind_one_bastion_share_one_connection_to_it(lab):
    bastion = lab.hosts[0]
    gateway = Endpoint(bastion.address, 22, "root", lab.identity_file)
    factory = _factory(lab)
    connections = [factory.connect(_host(lab, index, gateway=gateway)) for index in (1, 2)]
    try:
        assert all(c.run("true").ok for c in connections)
        assert len(factory._gateways) == 1
        sessions = lab.exec(bastion.name, ["sh", "-c", "ss -Htn state established '( sport = :22 )' | wc -l"])
    finally:
        for connection in connections:
            connection.close()
        factory.close()
    assert sessions.stdout.strip() == "1"


def test_closed_port_behind_a_bastion_is_unreachable_through_it(lab, monkeypatch):
    monkeypatch.setattr("agent.transport.ssh.RETRY_BASE_DELAY", 0.01)
    bastion = lab.hosts[0]
    gateway = Endpoint(bastion.address, 22, "root", lab.identity_file)
    factory = _factory(lab)
    target = Host(lab.hosts[1].name, Endpoint(lab.hosts[1].address, 2299, "root", lab.identity_file), gateway=gateway)
    try:
        with pytest.raises(HostUnreachable, match=f"through bastion root@{bastion.address}:22: .*3 attempts"):
            factory.connect(target)
    finally:
        factory.close()


def test_commands_are_sent_without_nagle_delay(lab):
    connection = _factory(lab).connect(_host(lab))
    try:
        sock = connection.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        connection.close()


def test_commands_run_when_the_process_holds_more_than_1024_descriptors(lab, descriptors_above_1024):
    connection = _factory(lab).connect(_host(lab))
    try:
        assert connection.client.get_transport().sock.fileno() > 1024
        result = connection.run("echo out; echo err >&2; exit 3")
    finally:
        connection.close()
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_testinfra_checks_go_over_the_verified_connection(lab, tmp_path):
    log = HostLog(tmp_path / "host.log")
    connection = _factory(lab).connect(_host(lab, user="deploy", sudo=True), log)
    try:
        host = testinfra_backend.testinfra_host(connection)
        assert host.run("id -un").stdout.strip() == "root"  # the connection's sudo -n
        assert host.file("/etc/ssh/sshd_config").exists
        assert "tcp://0.0.0.0:22" in host.socket.get_listening_sockets()
        ssh_connections = host.run("ss -Htn state established '( sport = :22 )' | wc -l").stdout.strip()
    finally:
        connection.close()
        log.close()
    assert ssh_connections == "1"  # no second connection of testinfra's own
    assert "$ sudo -n -- sh -c 'id -un'" in (tmp_path / "host.log").read_text()


def test_connection_lost_mid_command_is_unreachable_not_a_failed_command(lab):
    """sshd's session process killed while a command runs: the channel closes with no exit status.
    That is a lost connection (the host is unreachable, the run can be resumed), not exit status -1."""
    host = _host(lab, 2)
    connection = _factory(lab).connect(host)

    def drop() -> None:
        for _ in range(500):
            if lab.exec(host.name, ["sh", "-c", "pgrep -f 'sleep 30[.]017'"]).returncode == 0:
                break
        lab.exec(host.name, ["sh", "-c", "pkill -9 -f 'sshd: root'"])

    dropper = threading.Thread(target=drop)
    dropper.start()
    try:
        with pytest.raises(HostUnreachable, match="connection lost"):
            connection.run("sleep 30.017", timeout=60)
    finally:
        dropper.join()
        connection.close()


def test_a_command_killed_by_a_signal_on_a_live_connection_is_a_failed_command(lab):
    connection = _factory(lab).connect(_host(lab, 2))
    try:
        result = connection.run("kill -9 $$")
        assert not result.ok
        assert connection.run("echo still here").stdout.strip() == "still here"
    finally:
        connection.close()
