"""`inventory from-ansible`: Ansible INI and YAML inventories (with group_vars/, host_vars/) to ours."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.errors import InputError
from agent.inventory.ansible import convert, read_ansible_inventory
from agent.inventory.loader import load_inventory

DATA = Path(__file__).parents[1] / "data" / "ansible"
EXAMPLES = {"ini": DATA / "ini" / "hosts.ini", "yaml": DATA / "yaml" / "hosts.yaml"}


def _convert(source: Path, tmp_path: Path) -> tuple[Path, object]:
    hosts, groups = read_ansible_inventory(source)
    result = convert(hosts, groups, source=str(source), known_hosts="known_hosts")
    out = tmp_path / "inventory.yaml"
    out.write_text(result.text)
    return out, result


@pytest.mark.parametrize("kind", EXAMPLES)
def test_ini_and_yaml_inventories_map_connection_vars_groups_and_merged_vars(kind, tmp_path):
    out, result = _convert(EXAMPLES[kind], tmp_path)
    inventory = load_inventory(out, ssh_config=Path("/dev/null"))
    hosts = {host.name: host for host in inventory.hosts}
    assert list(hosts) == ["web1", "web2", "db1"]
    assert hosts["web1"].address == "198.18.0.7" and hosts["web2"].address == "198.18.0.8"
    assert hosts["db1"].address == "198.18.0.9" and hosts["db1"].sudo is True
    # group_vars (panels:vars, web.yml, all.yml) and host_vars merged as Ansible merges them
    assert hosts["web1"].vars == {"edition": "lite", "release": "stable", "period": "monthly", "fqdn": "web1.lab.example"}
    assert hosts["web2"].vars["edition"] == "pro"  # host_vars beat group vars
    assert hosts["db1"].vars == {"edition": "lite", "release": "stable"}
    assert set(inventory.groups) >= {"web", "db", "panels"}
    assert set(inventory.groups["panels"]) == {"web1", "web2", "db1"}


def test_unknown_ansible_connection_vars_are_reported_by_name_never_by_value(tmp_path):
    _, ini = _convert(EXAMPLES["ini"], tmp_path)
    assert any(note.startswith("ansible_ssh_common_args (2 host(s): web1, web2)") for note in ini.notes), ini.notes
    assert any(note.startswith("ansible_python_interpreter (1 host(s): db1)") for note in ini.notes), ini.notes
    _, yml = _convert(EXAMPLES["yaml"], tmp_path)
    assert any(note.startswith("ansible_password") for note in yml.notes)
    assert "not-for-ispagent" not in yml.text and "ansible_password" in yml.text  # named in the header only
    assert "ServerAliveInterval" not in ini.text


def test_cli_writes_the_inventory_and_lists_what_it_left_out(tmp_path):
    out = tmp_path / "fleet.yaml"
    result = CliRunner().invoke(cli, ["inventory", "from-ansible", str(EXAMPLES["ini"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "left out ansible_ssh_common_args" in result.output
    check = CliRunner().invoke(cli, ["inventory", "check", "-i", str(out), "--ssh-config", "/dev/null"])
    assert check.exit_code == 0, check.output
    assert "3 of 3 hosts" in check.output


def test_missing_source_and_bad_port_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(cli, ["inventory", "from-ansible", str(tmp_path / "nope.ini")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    bad = tmp_path / "bad.ini"
    bad.write_text("web1 ansible_port=eighty\n")
    result = CliRunner().invoke(cli, ["inventory", "from-ansible", str(bad)])
    assert result.exit_code == 2 and "ansible_port 'eighty' is not a TCP port" in result.output


def _mutations():
    """A shipped example with one character replaced, inserted or deleted."""
    texts = {kind: path.read_text() for kind, path in EXAMPLES.items()}
    kind = st.sampled_from(sorted(texts))
    return kind.flatmap(lambda k: st.tuples(
        st.just(k), st.integers(0, len(texts[k]) - 1), st.sampled_from(["replace", "insert", "delete"]),
        st.sampled_from(list(":=[]{}-#\n \"'x1") + ["{{", "ansible_port=", "[a:children]"]),
    ))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=_mutations())
def test_mutated_examples_convert_to_a_loadable_inventory_or_fail_with_one_line(mutation, tmp_path_factory):
    kind, at, how, text = mutation
    base = tmp_path_factory.mktemp("mutated")
    shutil.copytree(EXAMPLES[kind].parent, base, dirs_exist_ok=True)
    source = base / EXAMPLES[kind].name
    original = source.read_text()
    cut = at + 1 if how != "insert" else at
    source.write_text(original[:at] + ("" if how == "delete" else text) + original[cut:])
    try:
        hosts, groups = read_ansible_inventory(source)
        result = convert(hosts, groups, source=str(source), known_hosts="known_hosts")
    except InputError as error:
        assert "\n" not in str(error) and str(error)
        return
    out = base / "out.yaml"
    out.write_text(result.text)
    assert yaml.safe_load(result.text)["hosts"]
    try:
        load_inventory(out, ssh_config=Path("/dev/null"))
    except InputError as error:  # Ansible accepts what ours refuses (names, var values): one line, with the place
        assert "\n" not in str(error) and str(out) in str(error)
