"""ispagent[fabric] without a lab: the extra stays optional, fabric hosts map onto inventory hosts, bad
input is one line before any host is contacted. On the lab: tests/lab/test_fabric_on_lab.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fabric
import pytest
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import InputError
from agent.fabric.group import (
    apply_playbook,
    hosts_of_connections,
    hosts_of_inventory,
    playbook_path,
)
from agent.inventory import load_inventory
from agent.inventory.model import Endpoint, Host, Inventory
from agent.shipped import playbooks_dir

REPO = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
WITHOUT_FABRIC = """
import importlib.abc, sys
class NoFabric(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fabric", "invoke"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoFabric())
import agent, agent.cli.main, agent.runner.run, agent.transport, agent.testing
from agent.cli.main import main
try:
    import agent.fabric
except ImportError as error:
    print(error)
"""


def connection(host: str, **kwargs) -> fabric.Connection:
    return fabric.Connection(host, config=fabric.Config(lazy=True), **kwargs)


def inventory(*hosts: Host) -> Inventory:
    return Inventory(Path("/srv/fleet/inventory.yaml"), hosts, {})


WEB1 = Host("web1", Endpoint("192.0.2.10", 22, "root", Path("/keys/id_ed25519")), vars={"fqdn": "web1.example.com"})
WEB2 = Host("web2", Endpoint("192.0.2.11", 2222, "root"))


def test_ispagent_imports_and_its_cli_starts_without_fabric_and_agent_fabric_names_the_extra():
    result = subprocess.run([sys.executable, "-c", WITHOUT_FABRIC], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "agent.fabric needs Fabric: pip install 'ispagent[fabric]'"


def test_a_fabric_connection_resolved_to_the_inventory_address_is_used_as_it_is():
    given = connection("192.0.2.10", user="root")
    matched = hosts_of_inventory([given], inventory(WEB1, WEB2))
    assert matched.hosts == (WEB1,)  # found by address: its vars and key are the inventory's
    assert matched.connections["web1"] is given


def test_a_name_fabric_could_not_resolve_is_reached_where_the_inventory_says_with_its_key():
    matched = hosts_of_inventory(
        [connection("web1", user="root"), connection("web2", user="root")], inventory(WEB1, WEB2)
    )
    assert [host.name for host in matched.hosts] == ["web1", "web2"]
    web1, web2 = matched.connections["web1"], matched.connections["web2"]
    assert (web1.host, web1.port, web1.user) == ("192.0.2.10", 22, "root")
    assert web1.connect_kwargs["key_filename"] == ["/keys/id_ed25519"]
    assert (web2.host, web2.port) == ("192.0.2.11", 2222) and "key_filename" not in web2.connect_kwargs


def test_keys_ssh_config_named_for_a_host_reach_its_fabric_connection_as_they_reach_the_run():
    """fabric's own Config may read another ssh config than the inventory was read with."""
    keys = (Path("/keys/work"), Path("/keys/personal"))
    pinned = Host("web3", Endpoint("192.0.2.12", ssh_config_keys=keys, identities_only=True))
    web3 = hosts_of_inventory([connection("web3", user="root")], inventory(pinned)).connections["web3"]
    assert web3.connect_kwargs == {
        "key_filename": ["/keys/work", "/keys/personal"],
        "look_for_keys": False,
        "allow_agent": False,  # IdentitiesOnly
    }


@pytest.mark.parametrize(
    "given, problem",
    [
        (dict(host="192.0.2.99", user="root"), "no host named '192.0.2.99' or at '192.0.2.99':22"),
        (
            dict(host="192.0.2.10", user="deploy"),
            "hosts.web1: fabric reaches it as 'deploy'@'192.0.2.10':22, "
            "the inventory as root@192.0.2.10:22: make them agree",
        ),
    ],
)
def test_a_fabric_host_the_inventory_does_not_reach_the_same_way_is_refused_in_one_line(given, problem):
    with pytest.raises(InputError) as refused:
        hosts_of_inventory([connection(**given)], inventory(WEB1, WEB2))
    assert problem in str(refused.value) and "\n" not in str(refused.value)


def test_a_group_that_reaches_one_host_twice_is_refused():
    with pytest.raises(InputError, match="reaches web1 twice"):
        hosts_of_inventory([connection("web1", user="root"), connection("192.0.2.10", user="root")], inventory(WEB1))


def test_without_an_inventory_a_host_is_made_from_its_connection_with_the_vars_given():
    matched = hosts_of_connections([connection("deploy@192.0.2.20:2200")], {"edition": "pro"})
    assert matched.hosts == (Host("192.0.2.20", Endpoint("192.0.2.20", 2200, "deploy"), vars={"edition": "pro"}),)


def test_a_shipped_playbook_is_found_by_name_and_an_unknown_name_lists_them(tmp_path):
    assert playbook_path("install") == playbooks_dir() / "install.yaml"
    own = tmp_path / "own.yaml"
    own.write_text("steps: []\n")
    assert playbook_path(own) == own
    with pytest.raises(
        InputError, match=r"^'instal': no such playbook file, nor a shipped playbook .*shipped: audit, "
    ):
        playbook_path("instal")


def test_bad_vars_and_an_empty_group_fail_before_any_host_is_contacted(tmp_path):
    # 192.0.2.0/24 is TEST-NET: a connection attempt would hang or fail, not raise InputError.
    with pytest.raises(InputError, match=r"^hosts given in Python: hosts.192.0.2.30: var 'edition': "):
        apply_playbook([connection("root@192.0.2.30")], "smoke", host_vars={"edition": "lte"}, state_dir=tmp_path)
    with pytest.raises(InputError, match="the fabric group has no hosts"):
        apply_playbook([], "smoke", state_dir=tmp_path)
    assert not (tmp_path / "runs").exists()


def fab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "fabfile.py").write_text("from agent.fabric.tasks import ns\n")
    return subprocess.run(
        [str(FAB), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "ISPAGENT_STATE_DIR": str(cwd / "state")},
    )


def test_the_shipped_playbooks_and_steps_are_fab_tasks(tmp_path):
    listed = fab("--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.startswith("  ") and line.split()}
    assert {"install", "reprovision", "audit", "decommission", "smoke", "playbook"} <= names
    assert {"steps.facts", "steps.preflight", "steps.verify", "steps.license"} <= names
    assert not {"steps.installer", "steps.shell", "steps.upload"} & names  # they need a playbook around them


def test_fab_with_an_inventory_that_is_not_there_ends_in_one_line_and_exit_2(tmp_path):
    result = fab("-H", "web1", "smoke", "--inventory", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith(f"ispagent: {tmp_path / 'missing.yaml'}")


@st.composite
def mutated_inventory(draw) -> bytes:
    """inventory.example.yaml damaged by the one mutator (harness/mutations.py), with hypothesis's random."""
    return mutations.mutated(
        draw(st.randoms(use_true_random=False)), mutations.originals("inventory")[0], "inventory", 256 * 1024
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inventory_bytes=mutated_inventory(), name=st.sampled_from(["web1", "web2", "db1"]) | st.text(max_size=40))
def test_fabric_hosts_on_a_mutated_inventory_map_or_fail_in_one_escaped_line(tmp_path, inventory_bytes, name):
    path = tmp_path / "inventory.yaml"
    path.write_bytes(inventory_bytes)
    try:
        given = connection("web1", user="root")
        given.original_host = name  # what fab -H was given, whatever bytes a user typed
        matched = hosts_of_inventory([given], load_inventory(path))
    except InputError as error:
        message = str(error)
        assert len(message.splitlines()) == 1 and "\x1b" not in message, message
        return
    assert len(matched.hosts) == 1 and matched.hosts[0].name in matched.connections


def test_the_inventory_can_come_from_fabrics_own_config_file(tmp_path):
    # fabric reads fabric.yaml beside the fabfile: a team sets its inventory once, not per command.
    (tmp_path / "fabric.yaml").write_text(f"ispagent:\n  inventory: {tmp_path / 'fleet.yaml'}\n")
    result = fab("-H", "web1", "audit", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"ispagent: {tmp_path / 'fleet.yaml'}"), result.stderr
