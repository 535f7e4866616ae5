"""docs/python-api.md's example runs as written, and what it does to money shows in turnover."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from partnerkit import partner_vars, start_emulator

from agent.economics.program import load_program
from agent.economics.turnover import turnover_report
from agent.ledger import LicenseLedger

REPO = Path(__file__).resolve().parents[2]


def documented_example(title: str) -> str:
    """The first ```python block after the heading or line `title` of docs/python-api.md."""
    text = (REPO / "docs" / "python-api.md").read_text()
    section = text[text.index(title) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def account(tmp_path, monkeypatch):
    emulator = start_emulator(tmp_path / "partner")
    ledger = tmp_path / "ledger.sqlite"
    inventory = {
        "hosts": {
            "web1": {"address": "203.0.113.10", "vars": {"fqdn": "web1.example.com"}},
            "web2": {"address": "203.0.113.11", "vars": {"fqdn": "web2.example.com"}},
        },
        "defaults": {"vars": partner_vars(emulator, ledger)},
    }
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    yield emulator, ledger
    emulator.stop()


def test_the_licenses_and_money_example_runs_and_its_renewal_is_in_turnover(account):
    emulator, ledger_file = account
    emulator_client_order(emulator, "203.0.113.10", "web1.example.com")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(documented_example("Licenses and money, account by account"), "python-api.md", "exec"), {})
    lines = output.getvalue().splitlines()
    # web1's license is in the account already, web2 would get a new one, at a price
    assert lines[0].startswith("web1 adopted ") and lines[1].startswith("web2 ordered None ")
    assert any(line.startswith("renewed until ") for line in lines)
    assert emulator.calls["service.prolong"] == 1 and emulator.calls.get("soft.order.param", 0) == 1
    with LicenseLedger(ledger_file) as ledger:
        assert [event.kind for event in ledger.billing.events()] == ["renewal"]
        report = turnover_report(ledger, load_program(), date.today())
    assert report.statement.turnover > 0 and lines[-1].startswith(f"{report.month} {report.statement.turnover} tier ")


def emulator_client_order(emulator, ip: str, fqdn: str) -> None:
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    client = PartnerClient(
        settings_from_vars(
            {"partner_api_url": emulator.url, "partner_credentials_file": str(emulator.credentials_file)}
        )
    )
    client.order("lite", "monthly", ip, fqdn, "")
