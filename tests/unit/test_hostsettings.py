"""Host settings: read once, before any host is contacted, misspelt names refused with their line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from labkit import ispagent

from agent.errors import InputError, InventoryError
from agent.hostsettings import check_var, read_host_settings, unknown_var_problem
from agent.inventory.loader import load_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "key,close",
    [
        ("installer_sha265", "installer_sha256"),
        ("instaler_url", "installer_url"),
        ("partner_reigon", "partner_region"),
        ("ledger_pth", "ledger_path"),
        ("reuse_fre", "reuse_free"),
        ("program_fle", "program_file"),
    ],
)
def test_a_var_spelt_almost_like_a_setting_is_refused_with_the_setting(key, close):
    assert unknown_var_problem(key).endswith(f"did you mean '{close}'?")


@pytest.mark.parametrize("key", ["greeting", "php_default", "motd", "backup_dir", "web_root"])
def test_free_template_vars_are_left_alone(key):
    assert unknown_var_problem(key) is None
    check_var(key, {"any": ["value"]})


@pytest.mark.parametrize("key", ["installer_mirror", "partner_password", "license_seats", "ledger_dir"])
def test_an_unknown_var_with_a_settings_prefix_is_refused(key):
    with pytest.raises(InputError, match=f"var '{key}': '{key}' is not a setting ispagent knows"):
        check_var(key, "x")


def test_settings_are_typed():
    settings = read_host_settings(
        {
            "edition": "pro",
            "period": "annual",
            "fqdn": "web1.example.com",
            "activation_key": "1234-secret",
            "installer_timeout_minutes": 5,
            "partner_api_url": "http://127.0.0.1:9/billmgr",
            "reuse_free": True,
            "ledger_path": "~/ledger.sqlite",
            "greeting": "hello",
        }
    )
    assert (settings.install.edition, settings.license.period, settings.license.fqdn) == (
        "pro",
        "annual",
        "web1.example.com",
    )
    assert settings.install.installer_timeout_minutes == 5.0 and settings.account.partner.reuse_free is True
    assert settings.account.ledger_location(Path("/state")) == Path("~/ledger.sqlite").expanduser()
    assert repr(settings.license.activation_key) == "'***'" and "1234-secret" not in repr(settings)


def test_inventory_check_refuses_a_misspelt_installer_var_with_its_line(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "defaults:\n  vars:\n    edition: lite\n    installer_sha265: abc\nhosts:\n  web1: {address: 192.0.2.1}\n"
    )
    result = ispagent("inventory", "check", "-i", str(inventory), state_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ispagent: error: {inventory}:4: defaults.vars.installer_sha265: 'installer_sha265' is not a setting ispagent knows; "
        "did you mean 'installer_sha256'?"
    ]


@pytest.fixture
def silent_host():
    """A listening port on this machine that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)

    def contacted() -> bool:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            return False
        connection.close()
        return True

    yield server.getsockname()[1], contacted
    server.close()


def _inventory(tmp_path: Path, port: int, **vars) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ssh": {"known_hosts": str(tmp_path / "known_hosts")},
                "hosts": {"web1": {"address": "127.0.0.1", "port": port, "vars": {"fqdn": "web1.example.com", **vars}}},
            }
        )
    )
    return path


def _playbook(tmp_path: Path, steps: list, **vars) -> Path:
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "vars": vars, "steps": steps}))
    return path


def test_a_bad_partner_var_in_a_playbook_is_refused_before_any_host_is_contacted(tmp_path, silent_host):
    port, contacted = silent_host
    playbook = _playbook(tmp_path, ["facts", "license"], partner_timeout="soon")
    result = ispagent("run", str(playbook), "-i", str(_inventory(tmp_path, port)), state_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        == f"ispagent: error: {playbook}: vars.partner_timeout: 'soon' is not a positive number of seconds"
    )
    assert not contacted()


def test_missing_partner_credentials_are_refused_before_any_host_is_contacted(tmp_path, silent_host, monkeypatch):
    port, contacted = silent_host
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    inventory = _inventory(tmp_path, port, partner_credentials_file=str(tmp_path / "nowhere"))
    result = ispagent("run", str(_playbook(tmp_path, ["facts", "license"])), "-i", str(inventory), state_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"ispagent: error: {inventory}: hosts.web1: partner_credentials_file: {tmp_path / 'nowhere'}: no such credentials file"
    )
    assert not contacted()


def test_settings_that_contradict_once_merged_with_the_playbook_are_refused_before_any_host(tmp_path, silent_host):
    port, contacted = silent_host
    playbook = _playbook(tmp_path, ["facts"], mysql_server="mariadb")
    inventory = _inventory(tmp_path, port)
    result = ispagent("run", str(playbook), "-i", str(inventory), state_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"ispagent: error: {inventory}: hosts.web1: var 'mysql_server' needs 'dbtype: mysql' (the panel database is sqlite)"
    )
    assert not contacted()


def test_every_shipped_example_has_valid_settings():
    inventory = load_inventory(REPO / "inventory.example.yaml", ssh_config=Path("/dev/null"))
    for playbook in sorted((REPO / "playbooks").glob("*.yaml")):
        vars = yaml.safe_load(playbook.read_text()).get("vars") or {}
        for host in inventory.hosts:
            read_host_settings({**vars, **host.vars})


def test_the_inventory_reader_checks_settings_of_the_merged_host(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "defaults:\n  vars: {le_domain: panel.example.com}\nhosts:\n  web1:\n"
        "    address: 192.0.2.1\n    vars: {no_letsencrypt: true}\n"
    )
    with pytest.raises(InventoryError, match=r"inventory.yaml:4: hosts.web1: vars 'le_domain' and 'no_letsencrypt'"):
        load_inventory(path, ssh_config=Path("/dev/null"))


def test_settings_key_ignores_per_host_and_template_vars_only():
    from agent.hostsettings import settings_key

    shared = {"edition": "pro", "panel_options": ["DisableAutoUpdate"], "pricelists": {"pro": 1}}
    assert settings_key({**shared, "fqdn": "a.example", "greeting": "hi"}) == settings_key(
        {**shared, "fqdn": "b.example"}
    )
    assert settings_key({**shared, "edition": "lite"}) != settings_key(shared)


@pytest.mark.parametrize(("one", "other"), [(1, True), (1, 1.0), (0, False), ("1", 1), ([1], (1,))])
def test_settings_key_keeps_values_python_calls_equal_apart(one, other):
    from agent.hostsettings import settings_key

    assert settings_key({"reuse_free": one}) != settings_key({"reuse_free": other})


def test_each_host_of_a_large_inventory_is_still_checked(tmp_path):
    from agent.errors import InventoryError
    from agent.inventory import load_inventory

    hosts = "".join(f"  h{i}: {{address: 192.0.2.{i}, vars: {{fqdn: h{i}.example.com}}}}\n" for i in range(1, 50))
    bad = "  h50: {address: 192.0.2.50, vars: {fqdn: h50.example.com, mysql_server: mariadb}}\n"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"defaults: {{vars: {{edition: pro}}}}\nhosts:\n{hosts}{bad}")
    with pytest.raises(
        InventoryError, match=r"^.*inventory.yaml:52: hosts.h50: var 'mysql_server' needs 'dbtype: mysql'"
    ):
        load_inventory(inventory, ssh_config=Path("/dev/null"))
