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
        _event("2026-02-01", "activation", "8", 2), _event("2026-03-01", "renewal", "8", 3),
        _event("2026-03-10", "deactivation", "8", 4, None), _event("2026-04-01", "activation", "8", 5),
        _event("2026-05-01", "deactivation", "7", 6, None), _event("2026-05-02", "renewal", "9", 7),
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
        ledger.billing.import_events([_event("2026-02-01", "renewal", "7", 2), _event("2026-02-02", "activation", "7", 3)])
    assert len(ledger.billing.events()) == 1
