"""`BillingBook.import_events`: the bulk import applies `bill(strict=True)`'s rules in memory and
writes in one transaction, so a contradiction anywhere leaves the ledger as it was."""

from __future__ import annotations

import pytest

from agent.errors import LedgerError
from agent.ledger import BillingEvent, LicenseLedger


def _event(on: str, kind: str, license_id: str, line: int, edition: str | None = "lite") -> BillingEvent:
    period = "monthly" if edition else None
    return BillingEvent(on, kind, license_id, edition, period, None, line)


@pytest.fixture
def ledger(tmp_path):
    with LicenseLedger(tmp_path / "ledger.sqlite") as opened:
        opened.billing.import_events([_event("2026-01-05", "activation", "7", 2)])
        yield opened


def test_bulk_import_gives_the_same_terms_as_events_billed_one_by_one(ledger, tmp_path):
    events = [
        _event("2026-02-01", "activation", "8", 2),
        _event("2026-03-01", "renewal", "8", 3),
        _event("2026-03-10", "deactivation", "8", 4, None),
        _event("2026-04-01", "activation", "8", 5),
        _event("2026-05-01", "deactivation", "7", 6, None),
        _event("2026-05-02", "renewal", "9", 7),
    ]
    ledger.billing.import_events(events)
    with LicenseLedger(tmp_path / "one-by-one.sqlite") as other:
        for event in [_event("2026-01-05", "activation", "7", 2)] + events:
            other.billing.record(event)
        for day in ("2026-02-15", "2026-03-15", "2026-04-15", "2026-05-15"):
            assert ledger.billing.open_terms(day) == other.billing.open_terms(day), day
        assert ledger.billing.running_terms() == other.billing.running_terms() == {"8": "2026-04-01", "9": "2026-05-02"}
        assert ledger.billing.events() == other.billing.events()


def test_a_contradiction_on_any_line_names_it_and_writes_nothing(ledger):
    before = ledger.billing.events()
    events = [_event(f"2026-02-{day:02d}", "activation", str(100 + day), day) for day in range(1, 28)]
    events.append(_event("2026-01-01", "deactivation", "7", 40, None))  # before 7's activation on 2026-01-05
    with pytest.raises(LedgerError, match="^line 40: license 7 is deactivated on 2026-01-01, before its activation"):
        ledger.billing.import_events(events)
    assert ledger.billing.events() == before
    assert ledger.billing.running_terms() == {"7": "2026-01-05"}


def test_a_second_activation_of_a_running_license_is_refused(ledger):
    with pytest.raises(LedgerError, match="^line 3: license 7 is already active since 2026-01-05"):
        ledger.billing.import_events(
            [_event("2026-02-01", "renewal", "7", 2), _event("2026-02-02", "activation", "7", 3)]
        )
    assert len(ledger.billing.events()) == 1


# -- `ledger import` streams: its rows are staged and applied CHUNK at a time in one transaction ---


def _history_csv(path, rows: list[str]):
    path.write_text("date,license_id,edition,period,kind,price\n" + "\n".join(rows) + "\n")
    return path


def _shuffled_history() -> list[str]:
    """Three licenses' lives, written out of date order, with two equal payments on one day."""
    rows = [
        f"2026-0{m},{lic},lite,monthly,{kind},"
        for lic, lives in (
            ("7", [("1-05", "activation"), ("2-05", "renewal"), ("3-01", "deactivation")]),
            ("8", [("1-10", "activation"), ("4-02", "deactivation"), ("4-03", "activation")]),
            ("9", [("2-20", "renewal")]),
        )
        for m, kind in lives
    ]
    rows += ["2026-03-03,,,,payment,10.00", "2026-03-03,,,,payment,10.00"]
    return list(reversed(rows))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 3 rows: an import of a dozen crosses every chunk boundary, as a million rows do."""
    monkeypatch.setattr("agent.ledger.billing.CHUNK", 3)


def test_a_streamed_import_gives_what_the_whole_file_in_memory_gives(tmp_path, small_chunks):
    from datetime import date

    from agent.economics.billing_csv import import_billing_csv, read_billing_csv

    csv = _history_csv(tmp_path / "h.csv", _shuffled_history())
    with (
        LicenseLedger(tmp_path / "streamed.sqlite") as streamed,
        LicenseLedger(tmp_path / "one-by-one.sqlite") as other,
    ):
        assert import_billing_csv(streamed, csv, date(2026, 5, 1)).imported == 9
        for event in sorted(read_billing_csv(csv, date(2026, 5, 1)).events, key=lambda e: (e.on_date, e.line)):
            other.billing.record(event)
        assert streamed.billing.events() == other.billing.events()
        assert (
            streamed.billing.running_terms() == other.billing.running_terms() == {"8": "2026-04-03", "9": "2026-02-20"}
        )
        for day in ("2026-01-31", "2026-02-28", "2026-03-31"):
            assert streamed.billing.open_terms(day) == other.billing.open_terms(day), day


def test_a_streamed_import_twice_and_a_longer_file_import_only_what_is_new(tmp_path, small_chunks):
    from datetime import date

    from agent.economics.billing_csv import import_billing_csv

    rows = _shuffled_history()
    with LicenseLedger(tmp_path / "ledger.sqlite") as ledger:
        import_billing_csv(ledger, _history_csv(tmp_path / "h.csv", rows[1:]), date(2026, 5, 1))  # one payment
        again = import_billing_csv(ledger, _history_csv(tmp_path / "all.csv", rows), date(2026, 5, 1))
        assert (again.imported, again.already_recorded) == (1, 8)  # the second equal payment is new
        assert [e.kind for e in ledger.billing.events()].count("payment") == 2


def test_an_error_in_the_last_chunk_leaves_the_ledger_as_it_was(tmp_path, small_chunks):
    from datetime import date

    from agent.economics.billing_csv import import_billing_csv
    from agent.errors import BillingFileError

    rows = [f"2026-01-{day:02d},{100 + day},lite,monthly,activation," for day in range(1, 25)]
    rows.append("2026-01-30,101,lite,monthly,activation,")  # already active since 2026-01-01
    rows.append("2026-01-31,555,lite,monthly,deactivation,")  # never activated
    with LicenseLedger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(
            BillingFileError,
            match=r"h.csv:26: license 101 is already active since 2026-01-01.*"
            r"\(1 more: lines 27\); nothing was imported",
        ):
            import_billing_csv(ledger, _history_csv(tmp_path / "h.csv", rows), date(2026, 5, 1))
        assert ledger.billing.events() == [] and ledger.billing.running_terms() == {}
        assert import_billing_csv(ledger, _history_csv(tmp_path / "ok.csv", rows[:-2]), date(2026, 5, 1)).imported == 24
