"""Gateways as users write them, on the lab's sshd hosts: a two-hop ProxyJump chain (from ssh config and
from the inventory), ProxyCommand (OpenSSH's own `ssh -W` as the command), each hop's host key checked."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest
from labkit import SMOKE, ispagent, on_host, read_report

from agent.errors import HostKeyMismatch, HostUnreachable, UnknownHostKey
from agent.inventory import load_inventory
from agent.inventory.model import SshSettings
from agent.transport import SshConnector

pytestmark = pytest.mark.lab


def _ssh_w(lab, hop: str) -> str:
    """A ProxyCommand through `hop` with the OpenSSH client, trusting only the lab's known_hosts."""
    return (
        f"ssh -i {lab.identity_file} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={lab.known_hosts_path} -o StrictHostKeyChecking=yes -W %h:%p root@{hop}"
    )


def _gateway_files(lab, tmp_path):
    """h3 behind h1,h2 (ProxyJump from ssh config), h4 behind [h1, h2] (the inventory's list), h5 over a
    ProxyCommand written in the inventory, h6 over a ProxyCommand from ssh config."""
    h1, h2, h3, h4, h5, h6 = lab.hosts[:6]
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        textwrap.dedent(f"""\
        Host h1
          HostName {h1.address}
        Host h2
          HostName {h2.address}
        Host h3
          HostName {h3.address}
          ProxyJump h1,root@h2:22
        Host {h6.address}
          ProxyCommand {_ssh_w(lab, h2.address)}
        """)
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""\
        ssh: {{known_hosts: {lab.known_hosts_path}, connect_timeout: 5}}
        defaults:
          user: root
          identity_file: {lab.identity_file}
          vars: {{edition: lite, period: monthly, release: stable}}
        hosts:
          h3: {{vars: {{fqdn: {h3.fqdn}}}}}
          h4:
            address: {h4.address}
            gateway: [{h1.address}, {{address: {h2.address}, port: 22}}]
            vars: {{fqdn: {h4.fqdn}}}
          h5:
            address: {h5.address}
            proxy_command: "{_ssh_w(lab, h1.address)}"
            vars: {{fqdn: {h5.fqdn}}}
          h6: {{address: {h6.address}, vars: {{fqdn: {h6.fqdn}}}}}
        """)
    )
    return inventory, ssh_config


def _client_address(connector: SshConnector, host) -> str:
    connection = connector.connect(host)
    try:
        return connection.run("echo $SSH_CLIENT").stdout.split()[0]
    finally:
        connection.close()


def _sshd_peers(lab, name: str) -> set[str]:
    """The addresses with an SSH connection open to host `name`'s sshd, as the host itself sees them."""
    lines = on_host(lab, name, "ss -Htn state established '( sport = :22 )'").stdout.splitlines()
    return {line.split()[-1].rsplit(":", 1)[0].strip("[]") for line in lines}


def test_hosts_are_reached_through_a_two_hop_chain_and_through_proxy_commands(lab, tmp_path):
    h1, h2 = lab.hosts[0], lab.hosts[1]
    inventory_path, ssh_config = _gateway_files(lab, tmp_path)
    inventory = load_inventory(inventory_path, ssh_config=ssh_config)
    h3, h4, h5, h6 = inventory.hosts
    assert [hop.address for hop in h3.gateway.jumps()] == [h1.address, h2.address]
    assert h4.gateway == h3.gateway and h5.gateway is None and h6.endpoint.proxy_command is not None
    connector = SshConnector(inventory.ssh)
    try:
        # Each sshd sees the connection come from the hop before it, not from the control machine.
        assert _client_address(connector, h3) == h2.address
        assert _client_address(connector, h4) == h2.address
        assert h1.address in _sshd_peers(lab, h2.name)  # the second hop is reached from the first
        assert len(connector._gateways) == 2  # h1 and h2, shared by both hosts behind them
        assert _client_address(connector, h5) == h1.address  # ssh -W on h1
        assert _client_address(connector, h6) == h2.address
    finally:
        connector.close()


def test_a_first_hop_reached_over_its_own_proxy_command_carries_the_hop_after_it(lab, tmp_path):
    h1, h2, h3 = lab.hosts[:3]
    ssh_config = tmp_path / "ssh_config"
    # `edge` is h1, reached with `ssh -W` through h2; h3 is reached through edge: h2 -> h1 -> h3.
    ssh_config.write_text(f"Host edge\n  HostName {h1.address}\n  ProxyCommand {_ssh_w(lab, h2.address)}\n")
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text(
        textwrap.dedent(f"""\
        ssh: {{known_hosts: {lab.known_hosts_path}, connect_timeout: 5}}
        defaults: {{user: root, identity_file: {lab.identity_file}}}
        hosts:
          h3: {{address: {h3.address}, gateway: edge}}
        """)
    )
    inventory = load_inventory(inventory_path, ssh_config=ssh_config)
    connector = SshConnector(inventory.ssh)
    try:
        assert _client_address(connector, inventory.host("h3")) == h1.address
        assert h2.address in _sshd_peers(lab, h1.name)  # ssh -W on h2 opened h1's connection
    finally:
        connector.close()


def test_the_cli_runs_a_playbook_through_gateways_twice_and_the_second_run_changes_nothing(lab, tmp_path, monkeypatch):
    inventory, ssh_config = _gateway_files(lab, tmp_path)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(ssh_config.read_text())  # `ispagent run` reads ~/.ssh/config
    monkeypatch.setenv("HOME", str(home))
    for host in lab.hosts[2:6]:
        on_host(lab, host.name, "rm -rf /srv/ispagent-smoke")
    reports = []
    for attempt in (1, 2):
        report = tmp_path / f"{attempt}.json"
        done = ispagent("run", str(SMOKE), "-i", str(inventory), "--report-json", str(report), state_dir=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        reports.append(read_report(report)["summary"])
    assert reports[0]["changed"] == 4 and reports[0]["unreachable"] == 0
    assert reports[1] == {"hosts": 4, "ok": 4, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
    assert on_host(lab, "h5", "cat /srv/ispagent-smoke/hello.conf").stdout.count("fqdn = h5.lab.example") == 1


def _known_hosts_without_the_lab_key_of(lab, tmp_path, index: int, replacement: str | None):
    """The lab's known_hosts with host `index`'s key replaced by `replacement`'s key line (or left out)."""
    lines = lab.known_hosts_path.read_text().splitlines()
    address = lab.hosts[index].address
    kept = [line for line in lines if line.split()[0] != address]
    if replacement is not None:
        other = next(line for line in lines if line.split()[0] == replacement)
        kept.append(f"{address} {other.split(None, 1)[1]}")
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{line}\n" for line in kept))
    return path


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_a_wrong_host_key_on_the_middle_hop_is_refused_and_nothing_behind_it_is_reached(lab, tmp_path, policy):
    h2 = lab.hosts[1]
    inventory_path, ssh_config = _gateway_files(lab, tmp_path)
    inventory = load_inventory(inventory_path, ssh_config=ssh_config)
    known_hosts = _known_hosts_without_the_lab_key_of(lab, tmp_path, 1, lab.hosts[4].address)
    before = known_hosts.read_text()
    connector = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy=policy, connect_timeout=5))
    try:
        with pytest.raises(HostKeyMismatch, match=rf"^{h2.address}:22: host key changed: .*man-in-the-middle"):
            connector.connect(inventory.host("h3"))
    finally:
        connector.close()
    assert known_hosts.read_text() == before


def test_an_unknown_middle_hop_is_refused_under_strict_and_recorded_under_accept_new(lab, tmp_path):
    h2 = lab.hosts[1]
    inventory_path, ssh_config = _gateway_files(lab, tmp_path)
    inventory = load_inventory(inventory_path, ssh_config=ssh_config)
    known_hosts = _known_hosts_without_the_lab_key_of(lab, tmp_path, 1, None)
    strict = SshConnector(SshSettings(known_hosts=known_hosts, connect_timeout=5))
    try:
        with pytest.raises(UnknownHostKey, match=rf"^{h2.address}: host key .* is not in"):
            strict.connect(inventory.host("h4"))
    finally:
        strict.close()
    accepting = SshConnector(SshSettings(known_hosts=known_hosts, host_key_policy="accept-new", connect_timeout=5))
    try:
        assert _client_address(accepting, inventory.host("h4")) == h2.address
    finally:
        accepting.close()
    recorded = [line for line in known_hosts.read_text().splitlines() if line.split()[0] == h2.address]
    assert len(recorded) == 1 and recorded[0] in lab.known_hosts_path.read_text().splitlines()


def test_a_proxy_command_that_cannot_reach_the_host_ends_in_one_line(lab, tmp_path, monkeypatch):
    monkeypatch.setattr("agent.transport.ssh.RETRY_BASE_DELAY", 0.01)
    inventory_path, ssh_config = _gateway_files(lab, tmp_path)
    host = load_inventory(inventory_path, ssh_config=ssh_config).host("h5")
    to_closed_port = host.endpoint.proxy_command.replace(f"-W {host.address}:22", f"-W {host.address}:2299")
    assert to_closed_port != host.endpoint.proxy_command
    connector = SshConnector(SshSettings(known_hosts=lab.known_hosts_path, connect_timeout=5))
    with pytest.raises(HostUnreachable) as raised:
        connector.connect(replace(host, endpoint=replace(host.endpoint, proxy_command=to_closed_port)))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"cannot connect to root@{host.address}:22: the ProxyCommand exited with status 255: ")
    assert message.endswith("Connection refused; stdio forwarding failed (3 attempts)")
