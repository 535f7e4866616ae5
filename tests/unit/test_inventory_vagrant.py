"""`vagrant ssh-config` output into inventory YAML (recorded output: Vagrant cannot run in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.errors import InputError
from agent.inventory.vagrant import VagrantMachine, parse_vagrant_ssh_config, vagrant_inventory_yaml

RECORDED = Path(__file__).parents[1] / "data" / "vagrant" / "ssh-config.txt"
KEYS = "/home/alex/src/ispagent/vagrant/.vagrant/machines"


def test_recorded_output_gives_three_machines_with_their_forwarded_ports() -> None:
    assert parse_vagrant_ssh_config(RECORDED.read_text()) == [
        VagrantMachine("debian12", "127.0.0.1", 2222, "vagrant", f"{KEYS}/debian12/virtualbox/private_key"),
        VagrantMachine("ubuntu2404", "127.0.0.1", 2200, "vagrant", f"{KEYS}/ubuntu2404/virtualbox/private_key"),
        # alma9's IdentityFile is quoted in the recording, as Vagrant does for paths with spaces.
        VagrantMachine("alma9", "127.0.0.1", 2201, "vagrant", f"{KEYS}/alma9/virtualbox/private_key"),
    ]


def test_first_value_wins_and_equals_sign_form_is_read() -> None:
    text = "Host web\n  Port=2200\n  Port 2300\n  ProxyCommand ssh -o A=b x\n"
    assert parse_vagrant_ssh_config(text) == [VagrantMachine("web", "web", 2200, "vagrant", None)]


def test_inventory_yaml_trusts_new_host_keys_in_its_own_known_hosts_file() -> None:
    machines = parse_vagrant_ssh_config(RECORDED.read_text())
    document = yaml.safe_load(vagrant_inventory_yaml(machines, known_hosts="kh", domain="lab.test."))
    assert document["ssh"] == {"known_hosts": "kh", "host_key_policy": "accept-new"}
    assert document["hosts"]["ubuntu2404"] == {
        "address": "127.0.0.1",
        "port": 2200,
        "user": "vagrant",
        "identity_file": f"{KEYS}/ubuntu2404/virtualbox/private_key",
        "vars": {"fqdn": "ubuntu2404.lab.test"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "<stdin>: no Host entries; pipe in the output of `vagrant ssh-config`"),
        ("Host web\n  Port ssh\n", "<stdin>:2: Host 'web': Port 'ssh' is not a port number (1-65535)"),
        ("\nHost\n", "<stdin>:2: Host without a machine name"),
    ],
)
def test_unusable_output_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_vagrant_ssh_config(text)
    assert str(raised.value) == message
