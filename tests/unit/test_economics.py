"""Scenario ledgers whose invoices are worked out by hand from the program's rules (§ of
PARTNER-PROGRAM.md), then compared with what agent/economics computes.

The scenarios' program (tests/data/economics/program.yaml): lite 10/100, pro 20/200, host 40/400,
business 80/800 EUR (monthly/annual); tiers 10 % from 100, 15 % from 300, 20 % from 1000; minimum
100; 6 months under it and the status is lost. Defaults for every choice unless a test says.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from agent.economics.billing_csv import BillingFileError, import_billing_csv
from agent.economics.program import load_program
from agent.economics.rules import Month
from agent.economics.turnover import forecast, quote_rollout, turnover_report
from agent.ledger import LicenseLedger

PROGRAM = Path(__file__).parents[1] / "data" / "economics" / "program.yaml"
HEADER = "date,license_id,edition,period,kind,price\n"


def _program(**choices):
    return dataclasses.replace(load_program(PROGRAM), **choices)


def _ledger(tmp_path: Path, rows: list[str], today: str) -> LicenseLedger:
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    csv = tmp_path / "history.csv"
    csv.write_text(HEADER + "\n".join(rows) + "\n")
    import_billing_csv(ledger, csv, date.fromisoformat(today))
    return ledger


def _many(on: str, first: int, count: int, edition: str, period: str, kind: str = "activation") -> list[str]:
    return [f"{on},{n},{edition},{period},{kind}," for n in range(first, first + count)]


def _invoice(ledger, month: str, today: str, program=None):
    report = turnover_report(ledger, program or _program(), date.fromisoformat(today), Month.parse(month))
    return report, report.statement


def _lines(statement) -> set[tuple]:
    return {(l.kind, l.edition, l.period, l.quantity, l.discount, l.amount) for l in statement.lines}


def D(text: str) -> Decimal:
    return Decimal(text)


# 1 -- §17: the running turnover reaches the next tier inside the month -----------------------------


def test_tier_raised_mid_month_applies_from_the_next_charge(tmp_path):
    # February: 12 lite monthly on 02-10 = 120 EUR -> March opens at 10 % (§10: previous month >= 100).
    # March: the 12 renew on 03-10 (120, running 120); 10 pro on 03-15: the 9th takes the running
    # turnover to 120 + 9*20 = 300 = the 15 % tier's minimum, so the 10th pro and the business on
    # 03-20 are billed at 15 %.
    #   renewals lite 12 x 10 = 120 at 10 % = 108.00
    #   pro 9 x 20 = 180 at 10 % = 162.00;  pro 1 x 20 at 15 % = 17.00
    #   business 1 x 80 at 15 % = 68.00                         invoice 355.00, turnover 400.00
    rows = (
        _many("2026-02-10", 1, 12, "lite", "monthly")
        + _many("2026-03-15", 100, 10, "pro", "monthly")
        + ["2026-03-20,200,business,monthly,activation,"]
    )
    ledger = _ledger(tmp_path, rows, "2026-04-02")
    report, march = _invoice(ledger, "2026-03", "2026-04-02")
    assert march.opening.tier == 0 and march.closing_tier == 1
    assert [(r.on, r.turnover) for r in march.raises] == [("2026-03-15", D("300"))]
    assert _lines(march) == {
        ("renewal", "lite", "monthly", 12, D("10"), D("108.00")),
        ("activation", "pro", "monthly", 9, D("10"), D("162.00")),
        ("activation", "pro", "monthly", 1, D("15"), D("17.00")),
        ("activation", "business", "monthly", 1, D("15"), D("68.00")),
    }
    assert (march.turnover, march.list_total, march.invoice_total) == (D("400"), D("400"), D("355.00"))
    assert march.discount_total == D("45.00")
    # the other choice: the 9th pro, which reaches 300, already at 15 %:
    #   108.00 + 8 x 20 x 0.90 = 144.00 + 2 x 20 x 0.85 = 34.00 + 68.00 = 354.00
    _, this_charge = _invoice(ledger, "2026-03", "2026-04-02", _program(raise_applies_to="this_charge"))
    assert this_charge.invoice_total == D("354.00")
    assert report.next_tier() == (2, D("600"))  # 20 % from 1000: 600 more


# 2 -- §10/§17: a month that ends under its tier's minimum lowers the next month -------------------


def test_tier_lowered_after_a_weak_month(tmp_path):
    # January: 100 lite monthly on 01-05 = 1000 EUR -> February opens at 20 %.
    # 90 of them deactivated on 01-31, before their 02-05 renewal.
    # February: 10 renewals = 100 EUR at 20 % = 80.00; it ends under the 20 % tier's 1000.
    # March, lowering: qualifying -> the tier February's 100 reaches: 10 % -> 10 x 10 x 0.90 = 90.00
    #        lowering: one_step   -> one tier down from 20 %: 15 %       -> 10 x 10 x 0.85 = 85.00
    rows = _many("2026-01-05", 1, 100, "lite", "monthly") + _many("2026-01-31", 11, 90, "", "", "deactivation")
    ledger = _ledger(tmp_path, rows, "2026-04-01")
    _, feb = _invoice(ledger, "2026-02", "2026-04-01")
    assert (feb.opening.tier, feb.turnover, feb.invoice_total) == (2, D("100"), D("80.00"))
    _, march = _invoice(ledger, "2026-03", "2026-04-01")
    assert (march.opening.tier, march.invoice_total) == (0, D("90.00"))
    _, one_step = _invoice(ledger, "2026-03", "2026-04-01", _program(lowering="one_step"))
    assert (one_step.opening.tier, one_step.invoice_total) == (1, D("85.00"))


# 3 -- §10: six months in a row under the minimum ----------------------------------------------------


def test_six_months_under_the_minimum_lose_the_status(tmp_path):
    # One lite monthly from 2025-06-01: 10 EUR every month, June to November 2025: six months under 100.
    # June opens at the first tier (10 %): 9.00. July..November open under the first tier, which keeps
    # 10 % (discount_under_minimum): 9.00 each. After November, the sixth, the status is lost:
    # December is billed at 0 % (discount_after_status_lost): 10.00.
    ledger = _ledger(tmp_path, ["2025-06-01,7,lite,monthly,activation,"], "2026-01-05")
    invoices = {
        m: _invoice(ledger, m, "2026-01-05")[1].invoice_total for m in ("2025-06", "2025-07", "2025-11", "2025-12")
    }
    assert invoices == {"2025-06": D("9.00"), "2025-07": D("9.00"), "2025-11": D("9.00"), "2025-12": D("10.00")}
    september, _ = _invoice(ledger, "2025-09", "2026-01-05")
    october, _ = _invoice(ledger, "2025-10", "2026-01-05")
    november, _ = _invoice(ledger, "2025-11", "2026-01-05")
    december, _ = _invoice(ledger, "2025-12", "2026-01-05")
    assert (september.months_under, october.months_under, november.months_under) == (4, 5, 6)
    assert "4 of 6 months in a row under" in september.warnings[0] and "2 more" in september.warnings[0]
    assert "5 of 6" in october.warnings[0]
    assert "status lost" in november.warnings[0] and "status lost" in december.warnings[0]
    assert december.statement.opening.lost


# 4 -- §3/§5: an annual license is charged when bought and on its anniversary, a monthly one monthly --


def test_annual_against_monthly(tmp_path):
    # 2025-01-15: 1 lite annual (100) + 10 lite monthly (100). January: 200 at 10 % = 180.00.
    # February: the 10 monthly renew (100), the annual does not: opens at 10 % (January 200) -> 90.00.
    # 2026-01: the annual renews on 01-15 (100) + 10 monthly (100) = 200; December's 100 -> 10 %: 180.00.
    rows = ["2025-01-15,1,lite,annual,activation,"] + _many("2025-01-15", 10, 10, "lite", "monthly")
    ledger = _ledger(tmp_path, rows, "2026-03-01")
    expected = {
        "2025-01": ("200", "180.00"),
        "2025-02": ("100", "90.00"),
        "2025-12": ("100", "90.00"),
        "2026-01": ("200", "180.00"),
    }
    for month, (turnover, invoice) in expected.items():
        _, statement = _invoice(ledger, month, "2026-03-01")
        assert (statement.turnover, statement.invoice_total) == (D(turnover), D(invoice)), month
    _, january = _invoice(ledger, "2026-01", "2026-03-01")
    assert ("renewal", "lite", "annual", 1, D("10"), D("90.00")) in _lines(january)


# 5 -- §5: renewals: implied from running licenses, recorded ones (with their price) win -------------


def test_renewals_recorded_with_prices_and_implied_ones(tmp_path):
    # Imported history starts with renewals (the licenses are older than the ledger):
    # 2026-04-01 pro monthly 500 renewed at a recorded 18.50; 2026-04-02 host annual 501 (400).
    # April (first month, 10 %): 18.50 -> 16.65; 400 -> 360.00 (the 300 tier is reached by that
    # charge, so only charges after it would get 15 %): invoice 376.65, turnover 418.50.
    # May opens at 15 % (April 418.50 >= 300). License 500's renewal is recorded on 05-03 at 19.00,
    # so the one implied on 05-01 is not counted: 19.00 at 15 % = 16.15. 501 renews in April only.
    # June: nothing recorded; implied: 500 renews on 06-01 at the program's 20 -> turnover 20;
    # June opens under the first tier (May 19 < 100): 10 % -> 18.00.
    rows = [
        "2026-04-01,500,pro,monthly,renewal,18.50",
        "2026-04-02,501,host,annual,renewal,",
        "2026-05-03,500,pro,monthly,renewal,19.00",
    ]
    ledger = _ledger(tmp_path, rows, "2026-07-01")
    _, april = _invoice(ledger, "2026-04", "2026-07-01")
    assert (april.turnover, april.invoice_total) == (D("418.50"), D("376.65"))
    _, may = _invoice(ledger, "2026-05", "2026-07-01")
    assert _lines(may) == {("renewal", "pro", "monthly", 1, D("15"), D("16.15"))}
    _, june = _invoice(ledger, "2026-06", "2026-07-01")
    assert (june.turnover, june.invoice_total) == (D("20"), D("18.00"))
    # renewals: recorded -> June has no renewal in the ledger: nothing billed
    _, recorded = _invoice(ledger, "2026-06", "2026-07-01", _program(renewals="recorded"))
    assert (recorded.turnover, recorded.invoice_total) == (D("0"), D("0"))


# 6 -- deactivations stop renewals from their day on ---------------------------------------------


def test_deactivations_before_on_and_after_the_renewal_day(tmp_path):
    # 2026-05-10: 5 pro monthly (1..5): May 100 at 10 % = 90.00.
    # June renewals fall on 06-10: 1 deactivated 06-09 and 2 on 06-10 itself are not renewed; 3 is
    # deactivated 06-11, after its renewal. June: 3, 4, 5 = 60 at 10 % (May 100) = 54.00.
    # July: 4 and 5 = 40, opening under the first tier (June 60): 10 % -> 36.00. Active at July's end: 2.
    rows = _many("2026-05-10", 1, 5, "pro", "monthly") + [
        "2026-06-09,1,,,deactivation,",
        "2026-06-10,2,pro,monthly,deactivation,",
        "2026-06-11,3,,,deactivation,",
    ]
    ledger = _ledger(tmp_path, rows, "2026-08-03")
    results = {m: _invoice(ledger, m, "2026-08-03") for m in ("2026-05", "2026-06", "2026-07")}
    assert {m: s.invoice_total for m, (_, s) in results.items()} == {
        "2026-05": D("90.00"),
        "2026-06": D("54.00"),
        "2026-07": D("36.00"),
    }
    assert results["2026-06"][1].turnover == D("60")
    assert results["2026-07"][0].active_licenses == 2


# 7 -- an import with errors: line numbers, and nothing imported -----------------------------------


def test_import_with_errors_names_each_line_and_imports_nothing(tmp_path):
    ledger = _ledger(tmp_path, ["2026-01-05,1,lite,monthly,activation,"], "2026-03-01")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER
        + "\n".join(
            [
                "2026-02-01,2,lite,monthly,activation,",  # line 2: fine
                "2026-02-30,3,lite,monthly,activation,",  # line 3: no such date
                "2026-02-03,4,gold,monthly,activation,",  # line 4: no such edition
                "2026-02-04,5,pro,monthly,activation,12,50",  # line 5: a comma in the price: 7 columns
                "2026-02-05,99,,,deactivation,",  # line 6: 99 was never active
                "2026-02-06,1,lite,monthly,activation,",  # line 7: 1 is active since 2026-01-05
            ]
        )
        + "\n"
    )
    with pytest.raises(BillingFileError) as error:
        import_billing_csv(ledger, bad, date(2026, 3, 1))
    message = str(error.value)
    assert message.startswith(f"{bad}:3: date '2026-02-30' is not a date; write YYYY-MM-DD")
    assert "(4 more: lines 4, 5, 6, 7)" in message and message.endswith("nothing was imported")
    assert "\n" not in message
    assert [e.license_id for e in ledger.billing_events()] == ["1"]  # line 2 was not imported either
    # the ledger's invoice is the single license's: January 10 at 10 % = 9.00
    assert _invoice(ledger, "2026-01", "2026-03-01")[1].invoice_total == D("9.00")


# 8 -- §14: the marketing plan reminder ------------------------------------------------------------


@pytest.mark.parametrize(
    "today, days_before, words",
    [
        ("2026-11-26", 0, None),  # November: the program says December
        ("2026-11-26", 7, "due between 1 and 15 December (§14): send it to ISPsystem from 2026-12-01, by 2026-12-15"),
        (
            "2026-12-03",
            0,
            "annual marketing plan for 2027 due between 1 and 15 December (§14): send it to ISPsystem now",
        ),
        ("2026-12-20", 0, "was due by 2026-12-15"),
        ("2027-01-02", 0, None),
    ],
)
def test_december_marketing_plan_reminder(tmp_path, today, days_before, words):
    ledger = _ledger(tmp_path, ["2026-10-01,1,lite,monthly,activation,"], today)
    report = turnover_report(ledger, _program(remind_days_before=days_before), date.fromisoformat(today))
    assert (report.reminder is None) if words is None else (words in report.reminder)


# 9 -- §18: an unpaid invoice past its due date blocks orders --------------------------------------


def test_unpaid_invoice_past_due_blocks_orders_until_paid(tmp_path):
    # October: 10 lite monthly on 10-05 = 100 at 10 % = 90.00, due 10 days after the month: 2026-11-10.
    # November's invoice (10 renewals, 90.00) is not due yet on 2026-11-26.
    rows = _many("2026-10-05", 1, 10, "lite", "monthly")
    program = _program(track_payments=True)
    ledger = _ledger(tmp_path, rows, "2026-11-26")
    assert _invoice(ledger, "2026-10", "2026-11-26", program)[1].invoice_total == D("90.00")
    on_due_day = turnover_report(ledger, program, date(2026, 11, 10))
    assert on_due_day.blocked is None
    blocked = turnover_report(ledger, program, date(2026, 11, 26)).blocked
    assert "invoice for 2026-10 (90.00 EUR) was due on 2026-11-10" in blocked
    assert quote_rollout(ledger, program, [("lite", "monthly")], date(2026, 11, 26)).blocked == blocked
    paid = tmp_path / "paid.csv"
    paid.write_text(HEADER + "2026-11-12,,,,payment,90.00\n")
    import_billing_csv(ledger, paid, date(2026, 11, 26))
    assert turnover_report(ledger, program, date(2026, 11, 26)).blocked is None
    assert turnover_report(ledger, _program(), date(2026, 11, 26)).blocked is None  # not tracked by default


# 10 -- money before spending: a rollout's cost and how it moves this month's tier -----------------


def test_rollout_quote_prices_each_order_and_the_tier_it_reaches(tmp_path):
    # October: 28 lite monthly on 10-01 = 280 -> November opens at 10 %. On 11-01 they renew: 280 so far.
    # Ordering 3 pro monthly on 11-26: the 1st takes November to 300 (15 % tier) at 10 %: 18.00;
    # the 2nd and 3rd at 15 %: 17.00 each. Total 52.00 for 60.00 at list price.
    ledger = _ledger(tmp_path, _many("2026-10-01", 1, 28, "lite", "monthly"), "2026-11-26")
    quote = quote_rollout(ledger, _program(), [("pro", "monthly")] * 3, date(2026, 11, 26))
    assert [(o.discount, o.price) for o in quote.orders] == [
        (D("10"), D("18.00")),
        (D("15"), D("17.00")),
        (D("15"), D("17.00")),
    ]
    assert (quote.total_list, quote.total) == (D("60"), D("52.00"))
    assert (quote.before.closing_tier, quote.after.closing_tier) == (0, 1)


def test_forecast_projects_renewals_new_licenses_and_the_tier(tmp_path):
    # Running on 2026-11-26: 28 lite monthly (from 10-01). November's 280 -> December opens at 10 %.
    # December: 28 renewals on 12-01 (280) at 10 % = 252.00; 5 new pro mid-month (100): the 1st
    # reaches 300 at 10 % (18.00), the other 4 at 15 % (4 x 17.00 = 68.00): 338.00, turnover 380.
    # January opens at 15 % (380 >= 300):
    # 28 lite + 5 pro renewals (380) + 5 new pro (100) = 480 at 15 % = 408.00.
    ledger = _ledger(tmp_path, _many("2026-10-01", 1, 28, "lite", "monthly"), "2026-11-26")
    rate, months = forecast(ledger, _program(), date(2026, 11, 26), 2, rate=5, edition="pro", period="monthly")
    assert rate == 5
    assert [(str(m.month), m.renewals, m.turnover, m.invoice, m.active_licenses) for m in months] == [
        ("2026-12", 28, D("380"), D("338.00"), 33),
        ("2027-01", 33, D("480"), D("408.00"), 38),
    ]


def test_marketing_support_counts_active_licenses(tmp_path):
    rows = _many("2026-10-01", 1, 51, "lite", "monthly") + ["2026-11-02,1,,,deactivation,"]
    ledger = _ledger(tmp_path, rows, "2026-11-26")
    assert turnover_report(ledger, _program(), date(2026, 11, 26)).active_licenses == 50
    assert turnover_report(ledger, _program(), date(2026, 11, 26), Month(2026, 10)).active_licenses == 51


def test_invoiced_turnover_basis_counts_what_the_invoice_charges(tmp_path):
    # turnover_basis: invoiced. March: 35 lite on 03-02 at 10 % -> 9.00 each; turnover 315.00.
    # The 300 tier needs 34 of them (34 x 9 = 306): the 35th is billed at 15 % (8.50): 314.50 in all.
    ledger = _ledger(tmp_path, _many("2026-03-02", 1, 35, "lite", "monthly"), "2026-04-01")
    _, march = _invoice(ledger, "2026-03", "2026-04-01", _program(turnover_basis="invoiced"))
    assert (march.turnover, march.invoice_total) == (D("314.50"), D("314.50"))
