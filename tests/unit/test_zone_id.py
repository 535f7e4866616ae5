"""An IPv6 zone id is an interface name or number, nothing else: it reaches ssh and the known-hosts file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.inventory.addresses import is_ip_address


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%enp0s31f6", "fe80::1%3", "fe80::1%br-1a2b.100"])
def test_interface_names_and_numbers_are_zone_ids(address):
    assert is_ip_address(address)


@pytest.mark.parametrize("zone", ["eth0\n", "eth 0", "$(id)", "", "a" * 16, "-oProxyCommand=x", "eth0;id", "é"])
def test_any_other_zone_id_is_refused(zone):
    assert not is_ip_address(f"fe80::1%{zone}")


def test_an_inventory_host_with_a_hostile_zone_id_ends_in_one_line(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text('hosts:\n  web1:\n    address: "fe80::1%$(id)"\n    vars: {edition: lite}\n')
    done = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory)])
    assert done.exit_code == 2 and done.output.strip().splitlines() == [done.output.strip()], done.output
    assert f"{inventory}:3:" in done.output
