"""`ispagent plan`, `reconcile` and `licenses ...` against the emulator, without the lab."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from partnerkit import partner_vars, start_emulator

from agent.cli.main import cli
from agent.partner.client import PartnerClient
from agent.partner.settings import settings_from_vars


@pytest.fixture
def setup(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    vars = partner_vars(emulator, tmp_path / "ledger.sqlite")
    hosts = {f"web{i}": {"address": f"203.0.113.{i}", "vars": {"fqdn": f"web{i}.example.com"}} for i in range(1, 5)}
    hosts["web4"]["vars"]["edition"] = "pro"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {"vars": vars}, "hosts": hosts}))
    client = PartnerClient(settings_from_vars(vars))
    yield emulator, inventory, client
    emulator.stop()


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plan_lists_per_host_actions_and_totals_before_spending(setup):
    emulator, inventory, client = setup
    client.order("lite", "monthly", "203.0.113.1", "web1.example.com", "")
    result = _cli("plan", "-i", str(inventory), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert [h["action"] for h in plan["hosts"]] == ["adopted", "ordered", "ordered", "ordered"]
    assert plan["totals"] == [
        {"action": "adopted", "edition": "lite", "period": "monthly", "hosts": 1},
        {"action": "ordered", "edition": "lite", "period": "monthly", "hosts": 2},
        {"action": "ordered", "edition": "pro", "period": "monthly", "hosts": 1},
    ]
    assert emulator.calls.get("soft.order.param") == 1  # only the setup's order


def test_reconcile_finds_missing_orphaned_and_edition_mismatch(setup):
    emulator, inventory, client = setup
    client.order("lite", "monthly", "203.0.113.1", "web1.example.com", "")
    client.order("lite", "monthly", "203.0.113.4", "web4.example.com", "")  # web4 wants pro
    client.order("lite", "monthly", "198.51.100.7", "gone.example.com", "")
    result = _cli("reconcile", "-i", str(inventory), "--json", "--days", "40")
    assert result.exit_code == 0, result.output
    kinds = sorted((f["kind"], f["host_name"]) for f in json.loads(result.output))
    assert ("missing", "web2") in kinds and ("missing", "web3") in kinds
    assert ("edition-mismatch", "web4") in kinds and ("orphaned", None) in kinds
    assert ("expiring", None) in kinds  # monthly licenses expire within 40 days


def test_licenses_commands_and_delete_asks(setup):
    emulator, inventory, client = setup
    elid = client.order("lite", "monthly", "203.0.113.1", "web1.example.com", "")
    listed = _cli("licenses", "list", "-i", str(inventory), "--json")
    assert json.loads(listed.output)[0]["id"] == elid and "lickey" not in listed.output
    assert "renewed until" in _cli("licenses", "renew", elid, "--period", "annual", "-i", str(inventory)).output
    assert _cli("licenses", "change-ip", elid, "203.0.113.9", "-i", str(inventory)).exit_code == 0
    assert _cli("licenses", "suspend", elid, "-i", str(inventory)).exit_code == 0
    assert _cli("licenses", "resume", elid, "-i", str(inventory)).exit_code == 0
    refused = CliRunner().invoke(cli, ["licenses", "delete", elid, "-i", str(inventory)], input="n\n")
    assert refused.exit_code == 1 and client.get(elid).ip == "203.0.113.9"
    assert _cli("licenses", "delete", elid, "--yes", "-i", str(inventory)).exit_code == 0
    missing = CliRunner().invoke(cli, ["licenses", "show", elid, "-i", str(inventory)])
    assert missing.exit_code == 1 and "Object not found" in missing.output
