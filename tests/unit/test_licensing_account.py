"""agent/licensing/account.py: a change made from Python is billed in the ledger just as from the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from partnerkit import start_emulator

from agent.economics.program import load_program
from agent.economics.turnover import forecast, turnover_report
from agent.errors import PartnerTransient
from agent.ledger import BillingEvent, LicenseLedger
from agent.licensing import account
from agent.partner.client import PartnerClient
from agent.partner.settings import settings_from_vars

PROGRAM = load_program(Path(__file__).parents[1] / "data" / "economics" / "program.yaml")


@pytest.fixture
def partner(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    settings = settings_from_vars(
        {"partner_api_url": emulator.url, "partner_credentials_file": str(emulator.credentials_file)}
    )
    with LicenseLedger(tmp_path / "ledger.sqlite") as ledger:
        yield emulator, PartnerClient(settings, sleep=lambda s: None), ledger
    emulator.stop()


def _today():
    return datetime.now(timezone.utc).date()  # the ledger's days are UTC


def test_a_renewal_made_through_the_python_api_shows_in_turnover(partner):
    emulator, client, ledger = partner
    license_id = client.order("pro", "monthly", "203.0.113.1", "web1.example.com", "")
    until = account.renew(client, ledger, license_id, "monthly")
    assert until == client.get(license_id).expiredate
    lines = turnover_report(ledger, PROGRAM, _today()).statement.lines
    assert [(l.kind, l.edition, l.period, l.quantity, l.unit_price) for l in lines] == [
        ("renewal", "pro", "monthly", 1, Decimal(20))
    ]


def test_a_renewal_whose_answer_was_lost_is_found_and_billed_once(partner):
    emulator, client, ledger = partner
    license_id = client.order("lite", "monthly", "203.0.113.1", "web1.example.com", "")
    emulator.set_faults(drop_rate=1.0, functions=["service.prolong"])  # renewed, and the answer never arrives
    account.renew(client, ledger, license_id, "annual")
    assert emulator.calls["service.prolong"] == 1
    assert [(e.kind, e.license_id, e.period) for e in ledger.billing_events()] == [("renewal", license_id, "annual")]


def test_a_renewal_refused_before_it_happened_bills_nothing(partner):
    emulator, client, ledger = partner
    license_id = client.order("lite", "monthly", "203.0.113.1", "web1.example.com", "")
    emulator.set_faults(error_rate=1.0, functions=["service.prolong"])  # HTTP 503 before anything happens
    with pytest.raises(PartnerTransient, match="not renewed, try again"):
        account.renew(client, ledger, license_id, "monthly")
    assert ledger.billing_events() == []


def test_a_deletion_made_through_the_python_api_deactivates_the_license(partner):
    emulator, client, ledger = partner
    license_id = client.order("pro", "monthly", "203.0.113.1", "web1.example.com", "")
    started = _today().replace(day=1).isoformat()
    ledger.billing.record(BillingEvent(started, "activation", license_id, "pro", "monthly"), source="run")
    ledger.record_license(license_id, "web1", "203.0.113.1", "pro", "monthly", "ordered")
    assert turnover_report(ledger, PROGRAM, _today()).active_licenses == 1
    assert forecast(ledger, PROGRAM, _today(), 1, rate=0)[1][0].renewals == 1
    account.delete(client, ledger, license_id)
    assert [e.kind for e in ledger.billing_events()] == ["activation", "deactivation"]
    assert turnover_report(ledger, PROGRAM, _today()).active_licenses == 0
    assert forecast(ledger, PROGRAM, _today(), 1, rate=0)[1][0].renewals == 0  # no renewal counted next month
    assert ledger.license_of_host("web1") is None
