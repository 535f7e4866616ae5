"""`ispagent inventory check` and `from-vagrant` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli

DATA = Path(__file__).parents[1] / "data"
VAGRANT_SSH_CONFIG = DATA / "vagrant" / "ssh-config.txt"
RECORDED_VAGRANT_DIR = "/home/alex/src/ispagent/vagrant"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent("""\
        defaults:
          vars: {edition: pro, period: monthly, release: stable}
        groups:
          eu: {hosts: [web1]}
        hosts:
          web1:
            address: 198.18.0.2
            vars: {fqdn: web1.example.com, activation_key: K-SECRET-123}
          web2:
            user: deploy
            gateway: jump@bastion.example.com
        """))  # fmt: skip
    return path


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, prog_name="ispagent")


def test_check_prints_one_row_per_host_with_merged_settings(inventory_file: Path) -> None:
    result = invoke("inventory", "check", "-i", str(inventory_file))
    assert result.exit_code == 0, result.output
    header, web1, web2, summary = result.stdout.splitlines()
    assert header.split() == [
        "name", "address", "port", "user", "sudo", "gateway", "groups", "edition", "period", "release", "fqdn",
    ]  # fmt: skip
    assert web1.split() == [
        "web1",
        "198.18.0.2",
        "22",
        "root",
        "no",
        "-",
        "eu",
        "pro",
        "monthly",
        "stable",
        "web1.example.com",
    ]
    assert web2.split() == [
        "web2",
        "web2",
        "22",
        "deploy",
        "yes",
        "jump@bastion.example.com:22",
        "-",
        "pro",
        "monthly",
        "stable",
        "-",
    ]
    assert summary.startswith("2 of 2 hosts, 1 group; host keys: strict")
    assert "K-SECRET-123" not in result.output


def test_check_json_masks_the_activation_key(inventory_file: Path) -> None:
    result = invoke("inventory", "check", "-i", str(inventory_file), "--json")
    assert result.exit_code == 0, result.output
    assert "K-SECRET-123" not in result.output
    document = json.loads(result.stdout)
    web1, web2 = document["hosts"]
    assert web1["vars"]["activation_key"] == "***"
    assert web2["gateway"] == {"address": "bastion.example.com", "port": 22, "user": "jump", "identity_file": None}
    assert document["groups"] == {"eu": ["web1"]}


def test_check_limit_shows_only_the_selected_hosts(inventory_file: Path) -> None:
    result = invoke("inventory", "check", "-i", str(inventory_file), "--limit", "eu", "--json")
    assert [host["name"] for host in json.loads(result.stdout)["hosts"]] == ["web1"]


def test_check_bad_inventory_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  web1:\n    port: abc\n")
    result = invoke("inventory", "check", "-i", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"ispagent: error: {path}:3: hosts.web1.port: expected an integer, got 'abc'\n"


def test_check_unknown_limit_exits_2(inventory_file: Path) -> None:
    result = invoke("inventory", "check", "-i", str(inventory_file), "--limit", "web9")
    assert result.exit_code == 2
    assert result.stderr.startswith("ispagent: error: limit pattern 'web9' matches no host or group")


def test_real_cli_on_a_bad_inventory_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  web1:\n    vars: {edition: lte}\n")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "inventory", "check", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    message = f"{path}:3: hosts.web1.vars.edition: 'lte' is not one of lite, pro, host, business"
    assert done.stderr == f"ispagent: error: {message}\n"


def _recorded_with_keys(tmp_path: Path) -> str:
    """The recorded output with its key files made under tmp_path (from-vagrant refuses missing ones)."""
    recorded = VAGRANT_SSH_CONFIG.read_text().replace(RECORDED_VAGRANT_DIR, str(tmp_path))
    for machine in ("debian12", "ubuntu2404", "alma9"):
        key = tmp_path / ".vagrant" / "machines" / machine / "virtualbox" / "private_key"
        key.parent.mkdir(parents=True)
        key.write_text("key")
    return recorded


def test_from_vagrant_output_checks_clean(tmp_path: Path) -> None:
    recorded = _recorded_with_keys(tmp_path)
    output = tmp_path / "lab.yaml"
    result = invoke("inventory", "from-vagrant", "-o", str(output), "--domain", "lab.ispagent.test", input=recorded)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {output} (3 hosts)\n"

    checked = invoke("inventory", "check", "-i", str(output), "--json")
    assert checked.exit_code == 0, checked.output
    document = json.loads(checked.stdout)
    assert document["ssh"]["host_key_policy"] == "accept-new"
    assert document["ssh"]["known_hosts"] == str(tmp_path / "known_hosts.vagrant")
    rows = [(h["name"], h["address"], h["port"], h["user"], h["sudo"], h["vars"]["fqdn"]) for h in document["hosts"]]
    assert rows == [
        ("debian12", "127.0.0.1", 2222, "vagrant", True, "debian12.lab.ispagent.test"),
        ("ubuntu2404", "127.0.0.1", 2200, "vagrant", True, "ubuntu2404.lab.ispagent.test"),
        ("alma9", "127.0.0.1", 2201, "vagrant", True, "alma9.lab.ispagent.test"),
    ]


def test_from_vagrant_reads_a_file_and_prints_to_stdout(tmp_path: Path) -> None:
    saved = tmp_path / "ssh-config.txt"
    saved.write_text(_recorded_with_keys(tmp_path))
    result = invoke("inventory", "from-vagrant", "-i", str(saved), "--known-hosts", "lab_hosts")
    assert result.exit_code == 0, result.output
    assert "known_hosts: lab_hosts\n" in result.stdout
    assert "  alma9:\n    address: 127.0.0.1\n    port: 2201\n" in result.stdout


def test_from_vagrant_rejects_input_that_is_not_ssh_config() -> None:
    result = invoke("inventory", "from-vagrant", input="Bringing machine 'debian12' up...\n")
    assert result.exit_code == 2
    assert result.stderr == (
        "ispagent: error: <stdin>:1: 'bringing' before any Host line; is this `vagrant ssh-config` output?\n"
    )


@pytest.mark.parametrize("command", [["inventory", "check"], ["inventory", "from-vagrant"]])
def test_help_texts_explain_the_commands(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: ispagent " + " ".join(command) in result.stdout


# An ssh config's `Match exec` runs its command through invoke, which paramiko imports only if installed
# (it is with the fabric extra, not with ispagent alone): the command runs as a process of its own, with
# invoke taken away before paramiko is imported, or with invoke's own config file broken.
MATCH_EXEC_CHECK = """
import sys
if sys.argv[1] == "without-invoke":
    sys.modules["invoke"] = None
sys.argv = ["ispagent", "inventory", "check", "-i", sys.argv[2], "--ssh-config", sys.argv[3]]
from agent.cli.main import main
main()
"""


@pytest.mark.parametrize("case", ["without-invoke", "broken-invoke-config"])
def test_a_match_exec_block_that_cannot_run_is_one_line_not_a_traceback(case: str, tmp_path: Path) -> None:
    if case == "broken-invoke-config":
        pytest.importorskip("invoke")
        (tmp_path / "home" / ".invoke.yaml").write_text("run: [\n")
    inventory, ssh_config = tmp_path / "fleet.yaml", tmp_path / "ssh_config"
    inventory.write_text("hosts:\n  web1: {address: 198.18.0.2}\n")
    ssh_config.write_text('Match exec "true"\n  User deploy\n')
    done = subprocess.run(
        [sys.executable, "-c", MATCH_EXEC_CHECK, case, str(inventory), str(ssh_config)],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    said = {
        "without-invoke": "a `Match exec` block runs its command through the invoke package, which is not installed",
        "broken-invoke-config": "cannot look up 198.18.0.2 in the ssh config: while parsing a flow node",
    }[case]
    assert done.stderr.startswith(f"ispagent: error: {ssh_config}: {said}"), done.stderr


def test_a_match_exec_block_matches_as_ssh_matches_it_when_invoke_is_there(tmp_path: Path) -> None:
    pytest.importorskip("invoke")
    inventory, ssh_config = tmp_path / "fleet.yaml", tmp_path / "ssh_config"
    inventory.write_text("hosts:\n  web1: {address: 198.18.0.2}\n  web2: {address: 198.18.0.3}\n")
    ssh_config.write_text('Match host 198.18.0.2 exec "true"\n  User deploy\nMatch exec "false"\n  User never\n')
    result = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory), "--ssh-config", str(ssh_config)])
    assert result.exit_code == 0, result.output
    users = {line.split()[0]: line.split()[3] for line in result.output.splitlines()[1:3]}
    assert users == {"web1": "deploy", "web2": "root"}
