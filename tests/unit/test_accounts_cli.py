"""An inventory whose hosts belong to two partner accounts: `plan` and `reconcile` handle each account,
and a command that speaks to one account refuses in one line; never the first host's account silently."""

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
def two_accounts(tmp_path):
    first, second = start_emulator(tmp_path / "first"), start_emulator(tmp_path / "second")
    first_vars = partner_vars(first, tmp_path / "first.sqlite")
    second_vars = partner_vars(second, tmp_path / "second.sqlite")
    hosts = {
        "a1": {"address": "203.0.113.1", "vars": {"fqdn": "a1.example.com"}},
        "a2": {"address": "203.0.113.2", "vars": {"fqdn": "a2.example.com"}},
        "b1": {"address": "203.0.113.3", "vars": {"fqdn": "b1.example.com", **second_vars}},
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {"vars": first_vars}, "hosts": hosts}))
    # b1's license is in the second account only: planned with the first, it would be ordered again.
    PartnerClient(settings_from_vars(second_vars)).order("lite", "monthly", "203.0.113.3", "b1.example.com", "")
    yield inventory, first, second
    first.stop()
    second.stop()


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_plan_plans_each_account_with_its_own_licenses(two_accounts):
    inventory, first, second = two_accounts
    result = _cli("plan", "-i", str(inventory), "--json")
    assert result.exit_code == 0, result.output
    accounts = json.loads(result.output)["accounts"]
    assert [a["account"].split(" (")[0] for a in accounts] == [f"account {first.url}", f"account {second.url}"]
    actions = [{h["host"]: h["action"] for h in a["hosts"]} for a in accounts]
    assert actions == [{"a1": "ordered", "a2": "ordered"}, {"b1": "adopted"}]
    assert [a["money"]["to_order"] for a in accounts] == [2, 0]


def test_plan_of_one_account_keeps_its_shape(two_accounts):
    inventory, _, _ = two_accounts
    result = _cli("plan", "-i", str(inventory), "--limit", "b1", "--json")
    assert result.exit_code == 0, result.output
    assert [(h["host"], h["action"]) for h in json.loads(result.output)["hosts"]] == [("b1", "adopted")]


def test_reconcile_compares_each_account_with_its_own_hosts(two_accounts):
    inventory, first, second = two_accounts
    result = _cli("reconcile", "-i", str(inventory), "--json")
    assert result.exit_code == 0, result.output
    missing = sorted(
        (f["host_name"], f["account"].split(" (")[0]) for f in json.loads(result.output) if f["kind"] == "missing"
    )
    # b1 holds a license in its own account: only a1 and a2 are missing, from the first account
    assert missing == [("a1", f"account {first.url}"), ("a2", f"account {first.url}")]
    text = _cli("reconcile", "-i", str(inventory)).output
    assert text.count("== account ") == 2 and "2 finding(s) for 2 host(s) and 0 license(s)" in text


def test_a_command_for_one_account_refuses_several_in_one_line(two_accounts):
    inventory, _, _ = two_accounts
    result = _cli("licenses", "list", "-i", str(inventory))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "belong to 2 partner accounts" in lines[0] and "--limit" in lines[0]
    assert "Traceback" not in result.output
