"""plan_for_host from the ledger's view (agent/licensing/view.py), priced at today's tier."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from agent.economics.program import load_program
from agent.economics.turnover import month_so_far
from agent.ledger import LicenseLedger
from agent.licensing.plan import LedgerView, WantedLicense, plan_for_host
from agent.licensing.view import ledger_view, price_today, with_taken
from agent.partner.model import AccountLicense, LicenseStatus

PROGRAM = load_program(Path(__file__).parents[1] / "data" / "economics" / "program.yaml")
WANT = WantedLicense("h1", "198.18.0.2", "h1.lab.example", "pro", "monthly")


def _free(id: str) -> AccountLicense:
    return AccountLicense(id, "0.0.0.0", "free.lic", LicenseStatus.SUSPENDED, "55228", "pro", "2027-01-01")


def test_ledger_view_gives_the_host_its_license_and_keeps_other_hosts_licenses_taken(tmp_path):
    with LicenseLedger(tmp_path / "l.sqlite") as ledger:
        host = ledger.host("h1", WANT.ip, WANT.fqdn)
        ledger.record_license("7", "h1", WANT.ip, "pro", "monthly", "ordered")
        ledger.record_license("8", "h2", "198.18.0.3", "pro", "monthly", "ordered")
        ledger.record_license("9", "h3", "198.18.0.4", "pro", "monthly", "ordered")
        ledger.forget_license("9", "gone from the account")
        assert ledger_view(ledger, "h1") == LedgerView("7", host.remoteid)
        assert ledger_view(ledger, "h9") == LedgerView(None, None)
        account = [_free("7"), _free("8"), _free("9"), _free("10")]
        assert with_taken(ledger, ledger_view(ledger, "h1"), "h1", account) == LedgerView(
            "7", host.remoteid, frozenset({"8"})
        )
        assert with_taken(ledger, ledger_view(ledger, "h9"), "h9", account).taken == frozenset({"7", "8"})
        mine = AccountLicense("8", "198.18.0.3", "h2", LicenseStatus.ACTIVE, "55228", "pro", "2027-01-01")
        assert with_taken(ledger, LedgerView(), "h9", [mine]) == LedgerView()  # not free: the ledger is not asked


def test_a_hosts_ledger_view_reads_rows_about_it_and_the_licenses_it_could_reuse_only(tmp_path, monkeypatch):
    """A run asks for each host's view: its cost must not grow with the ledger (a partner's holds
    thousands of hosts and licenses)."""
    with LicenseLedger(tmp_path / "l.sqlite") as ledger:
        ledger.host("h1", WANT.ip, WANT.fqdn)
        ledger.record_license("7", "h1", WANT.ip, "pro", "monthly", "ordered")
        for n in range(300):
            ledger.host(f"other{n}", f"10.0.{n // 256}.{n % 256}", None)
            ledger.record_license(str(1000 + n), f"other{n}", f"10.0.{n // 256}.{n % 256}", "pro", "monthly", "ordered")
        read = []
        rows = ledger.db.rows
        monkeypatch.setattr(ledger.db, "rows", lambda statement: read.extend(found := rows(statement)) or found)
        known = with_taken(ledger, ledger_view(ledger, "h1"), "h1", [_free("1005"), _free("5")])
        assert known.license_id == "7" and known.taken == frozenset({"1005"})
        assert len(read) <= 3  # its license, its record, one of the two free licenses


def test_an_order_is_priced_at_todays_tier_and_nothing_else_is(tmp_path):
    with LicenseLedger(tmp_path / "l.sqlite") as ledger:
        quote = price_today(PROGRAM, lambda: month_so_far(ledger, PROGRAM, date(2026, 11, 26)))
        ordered = plan_for_host(WANT, [], LedgerView(), quote=quote)
        assert ordered.action == "ordered"
        assert (ordered.price.orders[0].list_price, ordered.price.orders[0].price) == (Decimal(20), Decimal("18.00"))
        reused = plan_for_host(WANT, [_free("5")], LedgerView(), reuse_free=True, quote=quote)
        assert (reused.action, reused.license.id, reused.price) == ("reused", "5", None)
        taken = plan_for_host(WANT, [_free("5")], LedgerView(taken=frozenset({"5"})), reuse_free=True)
        assert (taken.action, taken.price) == ("ordered", None)  # no quote asked for
