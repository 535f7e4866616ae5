"""Billing CSV import: money input is read only in its one exact form, stored canonically, and every
other form is one line naming the file, the line and the fix; mutations of the shipped example
either import or fail that way."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.economics.billing_csv import read_billing_csv, write_billing_csv
from agent.economics.rules import parse_day
from agent.errors import BillingFileError
from agent.ledger import LicenseLedger

EXAMPLE = Path(__file__).resolve().parents[2] / "billing.example.csv"
HEADER = "date,license_id,edition,period,kind,price\n"
TODAY = date(2026, 11, 26)


def _error(tmp_path: Path, row: str) -> str:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(BillingFileError) as raised:
        read_billing_csv(path, TODAY)
    assert "\n" not in str(raised.value)
    return str(raised.value).removeprefix(f"{path}:2: ")


DATE_FIX = "is not a date; write YYYY-MM-DD, e.g. 2026-03-31; nothing was imported"
AMOUNT_FIX = "write digits with at most two decimals, e.g. 14.00, or leave it empty; nothing was imported"


@pytest.mark.parametrize(
    "row, message",
    [
        ("20260105,1,lite,monthly,activation,", f"date '20260105' {DATE_FIX}"),  # fromisoformat reads it
        ("2026-W02-1,1,lite,monthly,activation,", f"date '2026-W02-1' {DATE_FIX}"),  # an ISO week date
        ("2026-1-5,1,lite,monthly,activation,", f"date '2026-1-5' {DATE_FIX}"),
        ("2026-02-30,1,lite,monthly,activation,", f"date '2026-02-30' {DATE_FIX}"),
        ("２０２６-01-05,1,lite,monthly,activation,", f"date '２０２６-01-05' {DATE_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,1e999999", f"price '1e999999' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,1e-999999", f"price '1e-999999' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,NaN", f"price 'NaN' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,Infinity", f"price 'Infinity' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,0x10", f"price '0x10' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,١٤", f"price '١٤' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,14.005", f"price '14.005' is not an amount in EUR; {AMOUNT_FIX}"),
        ("2026-01-05,1,lite,monthly,activation,+14", f"price '+14' is not an amount in EUR; {AMOUNT_FIX}"),
        (
            '2026-01-05,1,lite,monthly,activation,"14,00"',
            f"price '14,00' is not an amount in EUR (use a dot for decimals); {AMOUNT_FIX}",
        ),
        (
            "2026-01-05,1,lite,monthly,activation,-5",
            "price '-5' is negative; write the list price in EUR; nothing was imported",
        ),
        (
            "2026-01-05,1,lite,monthly,activation,1000000.01",
            "price '1000000.01' is more than 1000000.00 EUR; write the price of one license or payment; nothing was imported",
        ),
        (
            "2026-01-05,\x1b[2J1,lite,monthly,activation,",
            "license_id '\\x1b[2J1' is not a license id; write the id from the partner account (letters, digits, '.', '_', '-'); "
            "nothing was imported",
        ),
        (
            "2026-01-05,1,lite,monthly,\x1b]0;x\x07activation,",
            "kind '\\x1b]0;x\\x07activation' is not one of activation, renewal, deactivation, payment; nothing was imported",
        ),
        (
            '2026-01-05,1,lite,monthly,activation,"' + "9" * 200_000 + '"',
            "not CSV the importer can read (field larger than field limit (131072)); nothing was imported",
        ),
    ],
)
def test_money_input_in_any_other_form_is_one_line_naming_its_line(tmp_path, row, message):
    assert _error(tmp_path, row) == message


def test_prices_are_stored_canonically_and_exported_as_stored(tmp_path):
    events = read_billing_csv(EXAMPLE, TODAY).events
    assert [event.price for event in events] == ["10.00", None, "10.00", "40.00", None, "55.50"]
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    ledger.billing.import_events(events)
    out = tmp_path / "export.csv"
    with out.open("w") as handle:
        write_billing_csv(ledger, handle)
    assert out.read_text().splitlines()[1:] == [
        "2026-01-05,3100001,lite,monthly,activation,10.00",
        "2026-01-05,3100002,pro,annual,activation,",
        "2026-02-05,3100001,lite,monthly,renewal,10.00",
        "2026-02-10,3100003,host,monthly,activation,40.00",
        "2026-02-28,3100001,,,deactivation,",
        "2026-03-10,,,,payment,55.50",
    ]


# Pieces a spreadsheet, a locale or a copy-paste puts into a cell.
CELL_TOKENS = [
    ",",
    '"',
    "\n",
    "\r\n",
    "\t",
    " ",
    "-",
    ".",
    "e",
    "E",
    "+",
    "1e999999",
    "NaN",
    "W",
    "٣",
    "\x1b",
    "\x00",
    "2026-02-30",
    "20260105",
    "14,00",
    "0",
    "9" * 12,
    "\ufeff",
    "\u202e",
]


@st.composite
def _mutated(draw) -> str:
    text = EXAMPLE.read_text()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.one_of(st.sampled_from(CELL_TOKENS), st.characters())) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 6)) :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_mutated())
def test_a_mutated_example_imports_canonical_values_or_is_one_billing_error(tmp_path, text):
    path = tmp_path / "mutated.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        events = read_billing_csv(path, TODAY).events
    except BillingFileError as error:
        assert len(str(error).splitlines()) == 1 and "\x1b" not in str(error)
        return
    for event in events:
        assert len(event.on_date) == 10 and date.fromisoformat(event.on_date) <= TODAY
        assert event.price is None or (event.price.count(".") == 1 and len(event.price.split(".")[1]) == 2)
        assert event.price is None or 0 <= float(event.price) <= 1_000_000


@settings(max_examples=500, deadline=None)
@given(
    text=st.sampled_from(["2026-01-05", "2026-12-31", "2024-02-29"]).flatmap(
        lambda day: st.tuples(
            st.integers(0, len(day)),
            st.sampled_from(["", "-", "0", "9", "W", " ", "\n", "T00", "٣", "Z"]),
            st.integers(0, 2),
        ).map(lambda m: day[: m[0]] + m[1] + day[m[0] + m[2] :])
    )
)
def test_a_day_is_read_only_when_written_as_its_own_iso_form(text):
    day = parse_day(text)
    assert day is None or day.isoformat() == text
