"""`inventory from-ansible`: Ansible INI and YAML inventories (with group_vars/, host_vars/) to ours."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
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
    assert hosts["web1"].vars == {
        "edition": "lite",
        "release": "stable",
        "period": "monthly",
        "fqdn": "web1.lab.example",
    }
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


def _secret_keys(data) -> bool:
    if isinstance(data, dict):
        return any(
            any(word in str(key).lower() for word in ("password", "passwd", "activation_key", "authinfo"))
            or _secret_keys(value)
            for key, value in data.items()
        )
    return isinstance(data, list) and any(_secret_keys(item) for item in data)


ANSIBLE_FILES = {
    "ansible-ini": [EXAMPLES["ini"]],
    "ansible-yaml": sorted((DATA / "yaml").rglob("*.y*ml")),
}  # the order of originals("ansible-yaml")
CASE_LIMIT = 64 * 1024  # Ansible reads slowly: big enough for every reader's limits on values


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_examples_convert_to_a_checked_0600_or_umask_file_or_fail_in_one_line_writing_nothing(
    data, tmp_path_factory
):
    """An example (INI, or YAML with its group_vars/ and host_vars/) damaged by the harness's one mutator."""
    kind = data.draw(st.sampled_from(sorted(ANSIBLE_FILES)), label="kind")
    index = data.draw(st.integers(0, len(ANSIBLE_FILES[kind]) - 1), label="file")
    original = ANSIBLE_FILES[kind][index]
    damaged = mutations.mutated(data.draw(st.randoms(use_true_random=False)), original.read_bytes(), kind, CASE_LIMIT)
    base = tmp_path_factory.mktemp("mutated")
    shutil.copytree(EXAMPLES[kind.removeprefix("ansible-")].parent, base / "src")
    (base / "src" / original.relative_to(EXAMPLES[kind.removeprefix("ansible-")].parent)).write_bytes(damaged)
    source = base / "src" / EXAMPLES[kind.removeprefix("ansible-")].name
    before = {path: path.read_bytes() for path in base.rglob("*") if path.is_file()}
    out = base / "fleet.yaml"
    result = _from_ansible(str(source), "-o", str(out))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert {path: path.read_bytes() for path in base.rglob("*") if path.is_file() and path != out} == before
    if result.exit_code:
        assert result.exit_code == 2 and not out.exists(), result.output
        assert result.output.strip().splitlines()[-1].startswith(("ispagent: error: ", "Error: ")), result.output
        assert "Traceback" not in result.output and "not-for-ispagent" not in result.output
        return
    # ansible_password is named, never written; a mutation that renamed its key (`a\tnsible_password`) made
    # it another var, which Ansible would not use as the password either, and which is written as any var.
    renamed = b"not-for-ispagent" in original.read_bytes() and not re.search(
        rb"ansible_password\s*[:=]\s*not-for-ispagent", damaged
    )
    assert renamed or "not-for-ispagent" not in out.read_text()
    load_inventory(out, ssh_config=Path("/dev/null"))  # what was written passes inventory check
    secret = _secret_keys(yaml.safe_load(out.read_text()))
    assert oct(out.stat().st_mode & 0o777) in (("0o600",) if secret else ("0o600", "0o644"))


# --- hostile and secret inputs (issue 20, Build 6) -------------------------------------------------

VAULT_PASSWORD = "vault-pass-for-tests"
KEY = "ISPKEY-7f3a-vaulted-SECRET"


def _vaulted(text: str, password: str = VAULT_PASSWORD) -> str:
    """`text` encrypted as `ansible-vault encrypt_string` would, for a `!vault |` block."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("default", VaultSecret(password.encode()))]).encrypt(text).decode()


def _fleet(tmp_path: Path, group_vars: str, hosts: str = "[web]\nweb1 ansible_host=198.18.0.7\n") -> Path:
    (tmp_path / "fleet" / "group_vars").mkdir(parents=True)
    (tmp_path / "fleet" / "group_vars" / "all.yml").write_text(group_vars)
    source = tmp_path / "fleet" / "hosts.ini"
    source.write_text(hosts)
    (tmp_path / "vault.pass").write_text(VAULT_PASSWORD + "\n")
    return source


def _vault_var(name: str, value: str, password: str = VAULT_PASSWORD) -> str:
    lines = _vaulted(value, password).splitlines()
    return f"{name}: !vault |\n" + "".join(f"  {line}\n" for line in lines)


def _from_ansible(*args: str):
    return CliRunner().invoke(cli, ["inventory", "from-ansible", *args])


def _one_line_refusal(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    return result.output


def test_a_vault_var_without_the_vault_password_is_one_line_naming_its_file_and_var(tmp_path):
    source = _fleet(tmp_path, "release: stable\n" + _vault_var("activation_key", KEY))
    out = tmp_path / "fleet.yaml"
    line = _one_line_refusal(_from_ansible(str(source), "-o", str(out)))
    assert "group_vars/all.yml" in line and "'activation_key'" in line and "--vault-password-file" in line
    assert not out.exists()


def test_a_vault_var_is_decrypted_with_the_vault_password_file_into_a_0600_inventory(tmp_path):
    source = _fleet(tmp_path, "release: stable\n" + _vault_var("activation_key", KEY))
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(source), "--vault-password-file", str(tmp_path / "vault.pass"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert yaml.safe_load(out.read_text())["defaults"]["vars"]["activation_key"] == KEY
    assert load_inventory(out, ssh_config=Path("/dev/null")).hosts[0].vars["activation_key"] == KEY


def test_a_vars_file_encrypted_whole_is_read_with_the_vault_password_file(tmp_path):
    from ansible.parsing.vault import VaultLib, VaultSecret

    source = _fleet(tmp_path, "")
    secret = [("default", VaultSecret(VAULT_PASSWORD.encode()))]
    (source.parent / "group_vars" / "all.yml").write_bytes(VaultLib(secret).encrypt(f"activation_key: {KEY}\n"))
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(source), "--vault-password-file", str(tmp_path / "vault.pass"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert KEY in out.read_text() and oct(out.stat().st_mode & 0o777) == "0o600"


def test_a_wrong_vault_password_is_one_line_that_does_not_show_either_password(tmp_path):
    source = _fleet(tmp_path, _vault_var("activation_key", KEY, password="another-vault-password"))
    line = _one_line_refusal(
        _from_ansible(
            str(source), "--vault-password-file", str(tmp_path / "vault.pass"), "-o", str(tmp_path / "out.yaml")
        )
    )
    assert "'activation_key'" in line and "cannot be decrypted" in line
    assert VAULT_PASSWORD not in line and "another-vault-password" not in line and KEY not in line


def test_a_vault_password_file_that_is_a_fifo_or_a_script_is_refused_without_running_or_hanging(tmp_path):
    source = _fleet(tmp_path, _vault_var("activation_key", KEY))
    fifo = tmp_path / "vault.fifo"
    os.mkfifo(fifo)
    line = _one_line_refusal(_from_ansible(str(source), "--vault-password-file", str(fifo), "-o", str(tmp_path / "o")))
    assert "FIFO" in line
    script = tmp_path / "vault.sh"
    script.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\necho {VAULT_PASSWORD}\n")
    script.chmod(0o700)
    line = _one_line_refusal(
        _from_ansible(str(source), "--vault-password-file", str(script), "-o", str(tmp_path / "o"))
    )
    assert "executable" in line and not (tmp_path / "ran").exists()


def test_a_left_out_ansible_var_in_a_vault_needs_no_vault_password(tmp_path):
    source = _fleet(tmp_path, "release: stable\n" + _vault_var("ansible_become_password", "sudo-password-123"))
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "left out ansible_become_password" in result.output and "sudo-password-123" not in out.read_text()


INJECTED = "admin\ndefaults:\n  gateway: mallory@203.0.113.66\nhosts: {}\n#"


@pytest.mark.parametrize("var", ["ansible_become_user", "ansible_become_method", "ansible_connection"])
def test_a_host_var_with_newlines_cannot_write_yaml_of_its_own_through_a_comment(var, tmp_path):
    source = _fleet(tmp_path, "")
    (source.parent / "host_vars").mkdir()
    host_vars = {"ansible_host": "198.18.0.7", "ansible_become": True, var: INJECTED}
    (source.parent / "host_vars" / "web1.yml").write_text(yaml.safe_dump(host_vars))
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "gateway" not in yaml.safe_dump(yaml.safe_load(text))
    assert all(line.startswith("#") for line in text.split("\nssh:")[0].splitlines()), text
    assert "\\ndefaults:" in text  # shown, escaped, in the comment
    inventory = load_inventory(out, ssh_config=Path("/dev/null"))
    assert [host.name for host in inventory.hosts] == ["web1"] and inventory.hosts[0].gateway is None
    assert result.output.count("ispagent: left out") == result.output.count("\n") - 1  # one line per note


def test_a_source_path_with_a_newline_stays_in_its_comment(tmp_path):
    source = _fleet(tmp_path, "release: stable\n")
    odd = tmp_path / "fleet\nhosts: {}\n"
    source.parent.rename(odd)
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(odd / "hosts.ini"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert list(yaml.safe_load(out.read_text())["hosts"]) == ["web1"]


@pytest.mark.parametrize(
    "group_vars",
    [
        "mysql_root_password: mysql-pass-123\n",
        "ledger_url: postgresql+psycopg://ispagent:ledger-pass-123@db.example/ledger\n",
        "panel_users: [{name: ops, password: panel-pass-123, preset: admin}]\n",
        f"activation_key: {KEY}\n",
    ],
)
def test_an_inventory_holding_a_secret_is_0600_and_never_printed(group_vars, tmp_path):
    source = _fleet(tmp_path, group_vars)
    out = tmp_path / "fleet.yaml"
    result = _from_ansible(str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    line = _one_line_refusal(_from_ansible(str(source)))
    assert "-o FILE" in line and "pass-123" not in line and KEY not in line


def test_an_inventory_without_secrets_honours_the_umask(tmp_path):
    source = _fleet(tmp_path, "release: stable\n")
    out = tmp_path / "fleet.yaml"
    old = os.umask(0o027)
    try:
        result = _from_ansible(str(source), "-o", str(out))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert oct(out.stat().st_mode & 0o777) == "0o640"


def test_an_output_path_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    source = _fleet(tmp_path, "release: stable\n")
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's\n")
    link = tmp_path / "fleet.yaml"
    link.symlink_to(target)
    line = _one_line_refusal(_from_ansible(str(source), "-o", str(link)))
    assert "symbolic link" in line and target.read_text() == "someone else's\n"


def test_the_output_is_replaced_whole_never_written_through_a_hard_link(tmp_path):
    source = _fleet(tmp_path, "release: stable\n")
    out = tmp_path / "fleet.yaml"
    out.write_text("old\n")
    other = tmp_path / "other-name.yaml"
    os.link(out, other)
    result = _from_ansible(str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert other.read_text() == "old\n" and "web1" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_an_inventory_that_fails_inventory_check_is_one_line_and_not_written(tmp_path):
    hosts = "[web]\nweb1 ansible_host=198.18.0.7 ansible_ssh_private_key_file=/nonexistent/key\n"
    source = _fleet(tmp_path, "release: stable\n", hosts=hosts)
    out = tmp_path / "fleet.yaml"
    line = _one_line_refusal(_from_ansible(str(source), "-o", str(out)))
    assert "fails inventory check" in line and "nothing was written" in line and not out.exists()
    assert "fails inventory check" in _one_line_refusal(_from_ansible(str(source)))  # nor printed


def test_a_vars_file_of_repeated_yaml_aliases_is_one_line_not_a_hang(tmp_path):
    source = _fleet(tmp_path, "release: stable\n" + mutations.BOMB.decode())
    line = _one_line_refusal(_from_ansible(str(source), "-o", str(tmp_path / "out.yaml")))
    assert "more than 100000 values" in line and not (tmp_path / "out.yaml").exists()


def test_ansibles_own_warnings_never_print_the_lines_of_a_file_it_cannot_parse(tmp_path):
    source = tmp_path / "hosts.yaml"
    source.write_text("all:\n  hosts:\n    web1:\n      ansible_password: not-for-ispagent\n\t  broken: [\n")
    result = _from_ansible(str(source), "-o", str(tmp_path / "out.yaml"))
    assert "not-for-ispagent" not in result.output
    _one_line_refusal(result)


def _from_ansible_process(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """from-ansible as a process of its own: ansible reads its configuration once per process, as it loads."""
    command = [sys.executable, "-m", "agent", "inventory", "from-ansible", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env={**os.environ, **env})


def test_reading_an_ansible_inventory_leaves_the_callers_environment_as_it_was(tmp_path):
    """ansible-core reads ANSIBLE_* settings as it loads; ispagent sets two of its own for that moment
    only, so a program that embeds it (a fresh process here: ansible loads once per process) keeps its
    environment, and a file ansible cannot parse is still refused."""
    good, broken = tmp_path / "hosts.ini", tmp_path / "broken.yaml"
    good.write_text("[web]\nweb1 ansible_host=198.18.0.2\n")
    broken.write_text("all:\n  hosts: [\n")
    program = (
        "import os, sys\n"
        "from agent.errors import InputError\n"
        "from agent.inventory.ansible import read_ansible_inventory\n"
        "before = dict(os.environ)\n"
        "hosts, _ = read_ansible_inventory(sys.argv[1])\n"
        "try:\n"
        "    read_ansible_inventory(sys.argv[2])\n"
        "    refused = False\n"
        "except InputError:\n"
        "    refused = True\n"
        "print([h.name for h in hosts], dict(os.environ) == before, refused)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(good), str(broken)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "['web1'] True True", done.stderr


@pytest.mark.parametrize("where", ["ansible.cfg", "environment"])
def test_a_deprecated_ansible_setting_adds_no_line_to_the_error_or_the_report(where, tmp_path):
    # A team's ansible.cfg (or ANSIBLE_* var) with a setting ansible-core deprecates: ansible reports it
    # on several lines as it loads.
    env = {"ANSIBLE_JINJA2_NATIVE": "True"} if where == "environment" else {}
    if where == "ansible.cfg":
        (tmp_path / "ansible.cfg").write_text("[defaults]\njinja2_native = True\n")
    broken, out = tmp_path / "broken.ini", tmp_path / "fleet.yaml"
    broken.write_text("[web\nweb1\n")
    refused = _from_ansible_process(tmp_path, str(broken), "-o", str(out), **env)
    assert (refused.returncode, refused.stderr.splitlines()) == (
        2,
        [
            f"ispagent: error: {broken}: ansible cannot read it: No inventory was parsed, please check your "
            "configuration and options."
        ],
    )
    written = _from_ansible_process(tmp_path, str(EXAMPLES["ini"]), "-o", str(out), **env)
    assert written.returncode == 0, written.stderr
    assert [line for line in written.stderr.splitlines() if not line.startswith("ispagent: left out ")] == [
        f"wrote {out} (3 hosts)"
    ]


@pytest.mark.parametrize(
    ("config", "env", "said"),
    [
        ("[defaults]\nforks = abc\n", {}, "Config 'DEFAULT_FORKS' from '{cwd}/ansible.cfg' has an invalid value"),
        ("[defaults\n", {}, "Error reading config file ({cwd}/ansible.cfg)"),
        ("", {"ANSIBLE_LOCAL_TEMP": "/etc/hostname"}, "'DEFAULT_LOCAL_TMP': [Errno 20] Not a directory"),
    ],
)
def test_a_configuration_ansible_refuses_is_one_line_naming_it(config, env, said, tmp_path):
    if config:
        (tmp_path / "ansible.cfg").write_text(config)
    result = _from_ansible_process(tmp_path, str(EXAMPLES["ini"]), "-o", str(tmp_path / "fleet.yaml"), **env)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("ispagent: error: ansible-core cannot start: ")
    assert result.stderr.endswith("(it reads an ansible.cfg and ANSIBLE_* variables as it starts)\n")
    assert said.format(cwd=tmp_path) in result.stderr and not (tmp_path / "fleet.yaml").exists()


def test_ansibles_local_temp_dir_is_the_process_own_not_a_path_another_user_can_take_first(tmp_path):
    # The fixed path an earlier version used, planted by another local user: a file, then a link.
    (tmp_path / "ispagent-ansible").write_text("someone else's\n")
    (tmp_path / "ispagent-ansible-1").symlink_to(tmp_path / "elsewhere")
    out = tmp_path / "fleet.yaml"
    result = _from_ansible_process(tmp_path, str(EXAMPLES["ini"]), "-o", str(out), TMPDIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    # Made with mkdtemp (0700, a name no one can guess) and removed at exit with ansible's own inside it.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fleet.yaml", "ispagent-ansible", "ispagent-ansible-1"]
    assert not (tmp_path / "elsewhere").exists()


def test_a_write_that_fails_is_one_line_without_the_notes_of_what_was_left_out():
    # /proc takes no new file, even from root: the path passes the output check and the write fails.
    line = _one_line_refusal(_from_ansible(str(EXAMPLES["ini"]), "-o", "/proc/fleet.yaml"))
    assert line.startswith("ispagent: error: /proc/fleet.yaml: cannot write the inventory"), line
