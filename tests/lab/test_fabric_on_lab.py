"""ispagent[fabric] on the lab: a team's fabfile (tests/data/fabric/fabfile.py) installs through a fabric
group what `ispagent run` installs, with the same commands and one license per host; `fab -H` runs a
shipped playbook; an adopted fabric connection is trusted only with our known_hosts; the fabric view.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import fabric
import pytest
from labkit import REPO, events, ispagent, on_host, read_report, reset_panel

from agent.errors import HostKeyMismatch, UnknownHostKey
from agent.fabric import PlaybookGroup, adopt_fabric_connection, fabric_view
from agent.inventory.loader import load_inventory
from agent.lab.mirror import write_config
from agent.lab.services import inventory_vars
from agent.partner.client import PartnerClient
from agent.partner.settings import settings_from_vars
from agent.transport.hostkeys import KnownHosts

pytestmark = pytest.mark.lab

FABFILE_DIR = REPO / "tests" / "data" / "fabric"
FAB = Path(sys.executable).parent / "fab"
FABRIC_HOSTS, CLI_HOSTS = ("h1", "h2"), ("h3", "h4")


@pytest.fixture(scope="module")
def install_ready(lab):
    """h1..h4 without a panel; installs take a second and license from the lab's partner emulator."""
    mirror = lab.dir / "services" / "mirror"
    names = FABRIC_HOSTS + CLI_HOSTS
    for name in names:
        reset_panel(lab, name)
    write_config(mirror, license_url=f"http://{lab.bridge_address}:8443", install_seconds=1, license_retry_delay=0.2)
    try:
        yield lab
    finally:
        (mirror / "config.json").unlink(missing_ok=True)
        for name in names:
            reset_panel(lab, name)


def fab(*args: str, state_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """fabric's own `fab` in a subprocess, on the test fabfile, as a team runs it."""
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [str(FAB), "-r", str(FABFILE_DIR), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def transcript(state_dir: Path, run_id: str, name: str, lab) -> list[str]:
    """What the run sent host `name` (its commands and uploads, from the host log), with what is the
    host's own (name, address, FQDN, numbers such as license ids) written as placeholders, and the
    installer's polls of its log (as many as install.sh took, a matter of timing) as one."""
    host = lab.host(name)
    log = (state_dir / "runs" / run_id / "hosts" / f"{name}.log").read_text()
    sent, command = [], []
    for kind, text in re.findall(r"^\d\d:\d\d:\d\d (\S) ?(.*)$", log, re.MULTILINE):
        if kind == "$":
            command.append(text)
        elif kind == "=" and command:  # "exit N": the end of one command
            sent.append("\n".join(command))
            command = []
    commands = []
    for line in sent:
        for value, placeholder in {host.fqdn: "<FQDN>", host.address: "<ADDRESS>", name: "<NAME>"}.items():
            line = re.sub(rf"(?<![\w.]){re.escape(value)}(?!\w)", placeholder, line)
        # A staging file's random name first: 8 hex digits are all decimal one time in 43.
        line = re.sub(r"\.ispagent-[0-9a-f]{8}\b", ".ispagent-<STAGING>", line)
        line = re.sub(r"\b\d{5,}\b", "<NUMBER>", line)
        if "tail -c +" in line:
            line = "<poll the install log>"
        if not commands or commands[-1] != line or line != "<poll the install log>":
            commands.append(line)
    return commands


def live_licenses(lab) -> dict[str, list[str]]:
    account = PartnerClient(settings_from_vars(inventory_vars(lab.dir, lab.bridge_address))).list()
    by_ip: dict[str, list[str]] = {}
    for lic in account:
        if lic.live:
            by_ip.setdefault(lic.ip, []).append(lic.id)
    return by_ip


def test_fabfile_install_through_a_fabric_group_sends_what_ispagent_run_sends_and_licenses_each_host_once(
    install_ready, tmp_path
):
    lab = install_ready
    fabric_state, cli_state = tmp_path / "fabric", tmp_path / "cli"
    try:
        fabric_group_installs_as_ispagent_run_does(lab, tmp_path, fabric_state, cli_state)
    finally:
        # Leave the account with no live license on these IPs, for the tests that follow.
        for state_dir, names in ((fabric_state, FABRIC_HOSTS), (cli_state, CLI_HOSTS)):
            ispagent(
                "run",
                "playbooks/decommission.yaml",
                "-i",
                str(lab.inventory_path),
                "--limit",
                ",".join(names),
                state_dir=state_dir,
            )


def fabric_group_installs_as_ispagent_run_does(lab, tmp_path: Path, fabric_state: Path, cli_state: Path) -> None:
    inventory = str(lab.inventory_path)
    by_fabric = fab(
        "-S",
        str(lab.ssh_config_path),
        "rollout",
        "--names",
        ",".join(FABRIC_HOSTS),
        "--inventory",
        inventory,
        "--state-dir",
        str(fabric_state),
        "--report-json",
        str(tmp_path / "fabric.json"),
        state_dir=fabric_state,
    )
    assert by_fabric.returncode == 0, by_fabric.stdout + by_fabric.stderr
    by_cli = ispagent(
        "run",
        "playbooks/install.yaml",
        "-i",
        inventory,
        "--limit",
        ",".join(CLI_HOSTS),
        "--report-json",
        str(tmp_path / "cli.json"),
        state_dir=cli_state,
    )
    assert by_cli.returncode == 0, by_cli.stdout + by_cli.stderr
    fabric_report, cli_report = read_report(tmp_path / "fabric.json"), read_report(tmp_path / "cli.json")

    for fabric_host, cli_host in zip(FABRIC_HOSTS, CLI_HOSTS):
        sent_by_fabric = transcript(fabric_state, fabric_report["run_id"], fabric_host, lab)
        sent_by_cli = transcript(cli_state, cli_report["run_id"], cli_host, lab)
        assert any("install.sh" in line for line in sent_by_fabric)  # the whole job, not an early stop
        difference = "\n".join(difflib.unified_diff(sent_by_cli, sent_by_fabric, "ispagent run", "fabric", lineterm=""))
        assert sent_by_fabric == sent_by_cli, difference

    licensed = live_licenses(lab)
    for report, names in ((fabric_report, FABRIC_HOSTS), (cli_report, CLI_HOSTS)):
        hosts = {host["name"]: host for host in report["hosts"]}
        assert set(hosts) == set(names)
        for name in names:
            assert hosts[name]["status"] == "changed" and hosts[name]["license"]["action"] == "ordered", hosts[name]
            assert licensed[lab.host(name).address] == [hosts[name]["license"]["id"]], name

    again = fab(
        "-S",
        str(lab.ssh_config_path),
        "rollout",
        "--names",
        ",".join(FABRIC_HOSTS),
        "--inventory",
        inventory,
        "--state-dir",
        str(fabric_state),
        "--report-json",
        str(tmp_path / "again.json"),
        state_dir=fabric_state,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    summary = read_report(tmp_path / "again.json")["summary"]
    assert summary["changed"] == 0 and summary["ok"] == len(FABRIC_HOSTS)
    assert live_licenses(lab) == licensed  # nothing ordered the second time

    # The shipped decommission task over fab -H parks both licenses: none live on their IPs.
    released = fab(
        "-S",
        str(lab.ssh_config_path),
        "-H",
        ",".join(FABRIC_HOSTS),
        "decommission",
        "--inventory",
        inventory,
        "--state-dir",
        str(fabric_state),
        state_dir=fabric_state,
    )
    assert released.returncode == 0, released.stdout + released.stderr
    left = live_licenses(lab)
    assert not any(lab.host(name).address in left for name in FABRIC_HOSTS), left


def test_fab_H_on_two_lab_hosts_runs_the_shipped_smoke_playbook_and_a_rerun_changes_nothing(lab, tmp_path):
    try:
        fab_H_runs_smoke(lab, tmp_path)
    finally:
        for name in ("h5", "h6"):
            on_host(lab, name, "rm -rf /srv/ispagent-smoke")


def fab_H_runs_smoke(lab, tmp_path: Path) -> None:
    for name in ("h5", "h6"):
        on_host(lab, name, "rm -rf /srv/ispagent-smoke")
    args = (
        "-S",
        str(lab.ssh_config_path),
        "-H",
        "h5,h6",
        "smoke",
        "--inventory",
        str(lab.inventory_path),
        "--state-dir",
        str(tmp_path),
    )
    first = fab(*args, state_dir=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("h5", "h6"):
        check = on_host(lab, name, "cd /srv/ispagent-smoke && sha256sum -c --status hello.sum && cat motd")
        assert check.returncode == 0, (name, check.stderr)
    assert len(list((tmp_path / "runs").iterdir())) == 2  # fab calls the task once per host: a journaled run each
    assert first.stdout.count("changed 1") == 2, first.stdout

    # Hosts named as in the inventory, with no ssh_config: reached where the inventory says.
    second = fab(
        "-H", "h5,h6", "smoke", "--inventory", str(lab.inventory_path), "--state-dir", str(tmp_path), state_dir=tmp_path
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("changed 0") == 2 and second.stdout.count("ok 1") == 2, second.stdout


def test_a_host_that_fails_under_fab_ends_the_task_with_the_runs_exit_status_and_the_resume_line(lab, tmp_path):
    reset_panel(lab, "h6")
    result = fab(
        "-S",
        str(lab.ssh_config_path),
        "-H",
        "h6",
        "steps.verify",
        "--inventory",
        str(lab.inventory_path),
        "--state-dir",
        str(tmp_path),
        state_dir=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(
        r"^ispagent: run \S+ ended finished with exit code 1; to finish it: ispagent run --resume \S+$",
        result.stderr,
        re.MULTILINE,
    ), result.stderr


def test_fab_with_a_wrong_inventory_host_is_one_line_and_exit_2(lab, tmp_path):
    result = fab(
        "-S",
        str(lab.ssh_config_path),
        "-H",
        "nosuchhost",
        "smoke",
        "--inventory",
        str(lab.inventory_path),
        "--state-dir",
        str(tmp_path),
        state_dir=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "no host named 'nosuchhost'" in result.stderr


def lab_fabric_connection(lab, name: str) -> fabric.Connection:
    config = fabric.Config(runtime_ssh_path=str(lab.ssh_config_path))
    return fabric.Connection(name, config=config)


def test_an_adopted_fabric_connection_is_trusted_only_with_our_known_hosts_and_runs_in_our_host_shell(lab, tmp_path):
    inventory = load_inventory(lab.inventory_path)
    host = inventory.host("h5")
    trusted = KnownHosts(inventory.ssh.known_hosts)

    connection = adopt_fabric_connection(lab_fabric_connection(lab, "h5"), host, trusted)
    try:
        shells = {connection.run("echo $$").stdout for _ in range(3)}
        assert len(shells) == 1, shells  # each command a subshell of one long-lived shell: $$ is that shell's pid
        assert connection.run(["printf", "%s", "it's"]).stdout == "it's"
    finally:
        connection.close()

    # A known_hosts with another host's key under h5's address: refused before any command.
    wrong = tmp_path / "known_hosts"
    key_type, h6_key = trusted.keys_for(lab.host("h6").address).popitem()
    wrong.write_text(f"{lab.host('h5').address} {key_type} {h6_key.get_base64()}\n")
    with pytest.raises(HostKeyMismatch, match="host key changed"):
        adopt_fabric_connection(lab_fabric_connection(lab, "h5"), host, KnownHosts(wrong))
    refused = lab_fabric_connection(lab, "h5")
    with pytest.raises(UnknownHostKey, match="is not in"):
        adopt_fabric_connection(refused, host, KnownHosts(tmp_path / "empty_known_hosts"))
    assert refused.client.get_transport() is None or not refused.client.get_transport().is_active()
    # fabric opened it itself (AutoAddPolicy: any key accepted): checked after the fact, still refused.
    opened = lab_fabric_connection(lab, "h5")
    opened.open()
    try:
        with pytest.raises(UnknownHostKey, match="is not in"):
            adopt_fabric_connection(opened, host, KnownHosts(tmp_path / "empty_known_hosts"))
        with pytest.raises(HostKeyMismatch):
            adopt_fabric_connection(opened, host, KnownHosts(wrong))
        assert opened.is_connected  # refusing does not close what its owner opened
    finally:
        opened.close()


def test_fabric_view_runs_a_users_fabric_code_over_our_connection_and_leaves_it_open(lab, tmp_path):
    from agent.transport.ssh import SshConnector

    inventory = load_inventory(lab.inventory_path)
    connector = SshConnector(inventory.ssh)
    connection = connector.connect(inventory.host("h6"))
    try:
        view = fabric_view(connection)
        assert view.run("hostname", hide=True, in_stream=False).stdout.strip() == "h6"
        source = tmp_path / "note.txt"
        source.write_text("from fabric\n")
        view.put(str(source), "/tmp/fabric-view-note.txt")
        view.close()
        assert connection.run("cat /tmp/fabric-view-note.txt").stdout == "from fabric\n"
    finally:
        connection.close()
        connector.close()


def test_a_playbook_group_runs_in_rolling_batches_as_a_journaled_run_that_ispagent_lists(lab, tmp_path):
    group = PlaybookGroup("h5", "h6", config=fabric.Config(runtime_ssh_path=str(lab.ssh_config_path)))
    try:
        result = group.apply(
            "smoke", inventory=lab.inventory_path, state_dir=tmp_path, forks=2, batch_size="1", max_fail_percent=0
        )
    finally:
        group.close()
        for name in ("h5", "h6"):
            on_host(lab, name, "rm -rf /srv/ispagent-smoke")
    assert result.exit_code == 0, [(host.name, host.error) for host in result.hosts]
    batches = [event for event in events(tmp_path, result.run_id) if event["event"] == "batch_finished"]
    assert len(batches) == 2  # one host a batch
    listed = ispagent("runs", state_dir=tmp_path)
    assert listed.returncode == 0 and result.run_id in listed.stdout, listed.stdout + listed.stderr
