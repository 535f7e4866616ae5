"""The ledger on PostgreSQL: the same store, migrations, billing and a host lock that spans processes."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pgkit import pg_schema

from agent.economics.billing_csv import import_billing_csv
from agent.economics.program import load_program
from agent.economics.rules import Month
from agent.economics.turnover import turnover_report
from agent.ledger import SCHEMA_VERSION, HostLocked, LicenseLedger

PROGRAM = Path(__file__).parents[1] / "data" / "economics" / "program.yaml"


@pytest.fixture
def url():
    with pg_schema() as url:
        yield url


def test_new_ledger_is_migrated_and_keeps_hosts_orders_and_licenses(url):
    ledger = LicenseLedger(url)
    assert ledger.schema_version() == SCHEMA_VERSION
    first = ledger.host("h1", "198.18.0.2", "h1.lab.example")
    assert LicenseLedger(url).host("h1", "198.18.0.9", "h1.lab.example").remoteid == first.remoteid
    ledger.begin_order(first, "198.18.0.2", "lite", "monthly")
    ledger.begin_order(first, "198.18.0.2", "lite", "monthly")
    assert ledger.order_intent("h1").attempts == 2
    ledger.finish_order("h1", "3100001", "198.18.0.2", "lite", "monthly")
    assert ledger.license_of_host("h1").id == "3100001" and ledger.order_intent("h1").state == "done"
    assert [e.kind for e in ledger.billing_events()] == ["activation"]
    assert ledger.claim_license("7", "h2", "198.18.0.3", "lite", "monthly")
    assert not ledger.claim_license("7", "h3", "198.18.0.4", "lite", "monthly")
    assert "ispagent-test-pw" not in repr(ledger) and "***" in repr(ledger)


def test_a_scenario_gives_the_same_invoice_on_postgresql(url, tmp_path):
    # tests/unit/test_economics.py scenario 1 (tier raised mid-month): March invoice 355.00 by hand.
    rows = [f"2026-02-10,{n},lite,monthly,activation," for n in range(1, 13)]
    rows += [f"2026-03-15,{n},pro,monthly,activation," for n in range(100, 110)] + [
        "2026-03-20,200,business,monthly,activation,"
    ]
    csv = tmp_path / "h.csv"
    csv.write_text("date,license_id,edition,period,kind,price\n" + "\n".join(rows) + "\n")
    ledger = LicenseLedger(url)
    import_billing_csv(ledger, csv, date(2026, 4, 2))
    march = turnover_report(ledger, load_program(PROGRAM), date(2026, 4, 2), Month(2026, 3)).statement
    assert (march.turnover, march.invoice_total) == (Decimal("400"), Decimal("355.00"))


def test_a_streamed_import_in_chunks_twice_imports_once_on_postgresql(url, tmp_path, monkeypatch):
    monkeypatch.setattr("agent.ledger.billing.CHUNK", 4)  # staged and read back across chunks
    rows = [f"2026-02-{day:02d},{day},lite,monthly,activation," for day in range(1, 11)]
    rows += ["2026-03-01,,,,payment,10.00", "2026-03-01,,,,payment,10.00", "2026-03-05,3,,,deactivation,"]
    csv = tmp_path / "h.csv"
    csv.write_text("date,license_id,edition,period,kind,price\n" + "\n".join(reversed(rows)) + "\n")
    ledger = LicenseLedger(url)
    assert import_billing_csv(ledger, csv, date(2026, 4, 2)).imported == 13
    again = import_billing_csv(ledger, csv, date(2026, 4, 2))  # NULL edition and period matched as equal
    assert (again.imported, again.already_recorded) == (0, 13)
    assert len(ledger.billing.events()) == 13 and "3" not in ledger.billing.running_terms()


HOLD = """
import sys, time
from agent.ledger import LicenseLedger
with LicenseLedger(sys.argv[1]).host_lock("h1"):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_host_lock_spans_processes_and_dies_with_its_holder(url):
    ledger = LicenseLedger(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(HostLocked, match=r"another ispagent process \(ispagent .*:\d+ from 127.0.0.1\)"):
            with ledger.host_lock("h1", wait=0.5):
                pass
        with ledger.host_lock("h2", wait=0.5):  # other hosts are not held up
            pass
    finally:
        holder.kill()
        holder.wait()
    began = time.monotonic()
    with ledger.host_lock("h1", wait=10):  # the server drops a killed client's advisory locks
        pass
    assert time.monotonic() - began < 5
