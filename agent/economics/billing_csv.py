"""Billing history in and out of the ledger as CSV: `date,license_id,edition,period,kind,price`.

An import is checked whole before anything is written (each row, then the rows in date order against
what the ledger already holds) and written in one transaction: all of it or none. It streams: rows
are checked as they are read and staged in the ledger inside that transaction (agent/ledger/billing.py
`BillingImport`), so a million rows never sit in memory.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from agent.economics.rules import CENT, parse_day
from agent.editions import EDITIONS, PERIODS
from agent.errors import BillingFileError, LedgerError
from agent.inputfile import read_input_file
from agent.ledger import BILLING_KINDS, BillingEvent, LicenseLedger, event_key
from agent.ledger.billing import BillingImport
from agent.secrets import shown

COLUMNS = ("date", "license_id", "edition", "period", "kind", "price")
MAX_PRICE = Decimal("1000000.00")
_PRICE = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,2})?")
_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_ERRORS_LISTED = 5


@dataclass(frozen=True)
class BillingFile:
    """A billing CSV's events still to import, and how many of its rows the ledger already holds."""

    events: list[BillingEvent]
    already_recorded: int = 0


@dataclass(frozen=True)
class BillingImported:
    """What an import wrote, and how many of the file's rows the ledger already held (left out)."""

    imported: int
    already_recorded: int = 0


class _Problems:
    """The file's errors as (line, message): how many, and the first few by line (a file of a million
    bad rows must not keep a million messages)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[tuple[int, str]] = []

    def add(self, errors: Iterable[tuple[int, str]]) -> None:
        for error in errors:
            self.count += 1
            self.first.append(error)
            if len(self.first) > 4 * (MAX_ERRORS_LISTED + 1):
                self.first = sorted(self.first)[: MAX_ERRORS_LISTED + 1]

    def __bool__(self) -> bool:
        return self.count > 0

    def check(self, path: Path) -> None:
        """Raise BillingFileError naming the first bad line (and how many more), if there is one."""
        if not self.count:
            return
        first = sorted(self.first)
        number, problem = first[0]
        more = (
            f" ({self.count - 1} more: lines {', '.join(str(n) for n, _ in first[1 : 1 + MAX_ERRORS_LISTED])}"
            f"{', …' if self.count > 1 + MAX_ERRORS_LISTED else ''})"
            if self.count > 1
            else ""
        )
        raise BillingFileError(f"{path}:{number}: {problem}{more}; nothing was imported")


def read_billing_csv(
    path: Path,
    today: date,
    running: dict[str, str] | None = None,
    recorded: Callable[[str, str], Counter[tuple[object, ...]]] | None = None,
) -> BillingFile:
    """The file's events, each checked; raises BillingFileError naming the first bad line (and how many more).

    `recorded(first_day, last_day)` counts the ledger's events by `event_key`: rows the ledger already
    holds are left out (a file imported twice, or a newer export that repeats older months, imports
    only what is new). Identical rows are matched by count, so a file with two equal payments on one
    day keeps the second when the ledger has one. All in memory: `import_billing_csv` streams.
    """
    problems = _Problems()
    events = list(_checked_events(path, today, problems))
    total = len(events)
    if recorded is not None and events and not problems:
        events = _not_yet_recorded(events, recorded(min(e.on_date for e in events), max(e.on_date for e in events)))
    for _ in _in_sequence(sorted(events, key=lambda e: (e.on_date, e.line)), running or {}, problems):
        pass
    problems.check(path)
    return BillingFile(events, total - len(events))


def _checked_events(path: Path, today: date, problems: _Problems) -> Iterator[BillingEvent]:
    """The file's good rows as events, one by one; each bad row goes to `problems` instead."""
    text = read_input_file(path, BillingFileError, what="billing CSV")
    reader = csv.reader(_lines(text))  # row by row: a million rows as lists would cost ~0.5 GB
    try:
        first = next(reader, None)
        if first is None:
            raise BillingFileError(f"{path}:1: empty file; the first line must be the header {','.join(COLUMNS)}")
        header = [cell.strip().lower() for cell in first]
        if tuple(header) != COLUMNS:
            raise BillingFileError(f"{path}:1: header is {shown(','.join(first))}; write it as {','.join(COLUMNS)}")
        for number, cells in enumerate(reader, start=2):
            if not "".join(cells).strip():
                continue
            try:
                yield _event(cells, number, today)
            except ValueError as problem:
                problems.add([(number, str(problem))])
    except csv.Error as problem:  # a stray carriage return or NUL byte, an unclosed quote
        raise BillingFileError(
            f"{path}:{reader.line_num}: not CSV the importer can read ({problem}); nothing was imported"
        ) from None


_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """`text`'s lines with their endings (\\n, \\r\\n or a lone \\r), as io.StringIO(text, newline="")
    gives them to the csv module, without the copy it makes (four bytes a character)."""
    return map(re.Match.group, _LINE.finditer(text))


def _not_yet_recorded(events: list[BillingEvent], recorded: Counter[tuple[object, ...]]) -> list[BillingEvent]:
    left = Counter(recorded)
    fresh = []
    for event in events:
        key = event_key(event)
        if left[key] > 0:
            left[key] -= 1
        else:
            fresh.append(event)
    return fresh


def _event(cells: list[str], line: int, today: date) -> BillingEvent:
    if len(cells) != len(COLUMNS):
        raise ValueError(
            f"{len(cells)} columns; write {len(COLUMNS)}: {','.join(COLUMNS)} (leave price empty if unknown)"
        )
    on, license_id, edition, period, kind, price = map(str.strip, cells)
    day = _parse_day(on)
    if day is None:
        raise ValueError(f"date {shown(on)} is not a date; write YYYY-MM-DD, e.g. 2026-03-31")
    if day > today:
        raise ValueError(f"date {on} is in the future; the ledger holds what happened")
    kind = kind.lower()
    if kind not in BILLING_KINDS:
        raise ValueError(f"kind {shown(kind)} is not one of {', '.join(BILLING_KINDS)}")
    if kind == "payment":
        return BillingEvent(on, kind, "", None, None, _price(price, required=True), line)
    if not license_id:
        raise ValueError("license_id is empty; write the license's id in the partner account")
    if not _LICENSE_ID.fullmatch(license_id):
        raise ValueError(
            f"license_id {shown(license_id)} is not a license id; write the id from the partner account "
            "(letters, digits, '.', '_', '-')"
        )
    edition, period = edition.lower(), period.lower()  # empty: none given (only a deactivation may leave them out)
    if kind != "deactivation" or edition:
        if edition not in EDITIONS:
            raise ValueError(f"edition {shown(edition)} is not one of {', '.join(EDITIONS)}")
    if kind != "deactivation" or period:
        if period not in PERIODS:
            raise ValueError(f"period {shown(period)} is not one of {', '.join(PERIODS)}")
    return BillingEvent(on, kind, license_id, edition or None, period or None, _price(price, required=False), line)


# A file has a few hundred distinct days and a million rows; bounded: a file may hold any text there.
_parse_day = lru_cache(maxsize=4096)(parse_day)


def _price(text: str, required: bool) -> str | None:
    """A price as plain decimal digits with at most two decimals, 0 to MAX_PRICE, stored as 14.00.

    `Decimal` alone reads 1e999999 (which breaks turnover later), NaN, Infinity and digits of any script."""
    if not text:
        if required:
            raise ValueError("a payment needs its amount in the price column")
        return None
    if text.startswith("-"):
        raise ValueError(f"price {shown(text)} is negative; write the list price in EUR")
    if not _PRICE.fullmatch(text):
        hint = " (use a dot for decimals)" if "," in text else ""
        raise ValueError(
            f"price {shown(text)} is not an amount in EUR{hint}; write digits with at most two decimals, "
            "e.g. 14.00, or leave it empty"
        )
    value = Decimal(text)
    if value > MAX_PRICE:
        raise ValueError(f"price {shown(text)} is more than {MAX_PRICE} EUR; write the price of one license or payment")
    return str(value.quantize(CENT))


def _in_sequence(
    events: Iterable[BillingEvent], running: dict[str, str], problems: _Problems
) -> Iterator[BillingEvent]:
    """`events` (given in date order) that agree with the ledger and with each other; the others go to `problems`."""
    open_since = dict(running)
    for event in events:
        if event.kind == "activation":
            if event.license_id in open_since:
                problems.add(
                    [
                        (
                            event.line,
                            f"license {event.license_id} is already active since "
                            f"{open_since[event.license_id]}: deactivate it first, or write kind renewal",
                        )
                    ]
                )
                continue
            open_since[event.license_id] = event.on_date
        elif event.kind == "renewal":
            open_since.setdefault(event.license_id, event.on_date)
        elif event.kind == "deactivation":
            if event.license_id not in open_since:
                problems.add(
                    [
                        (
                            event.line,
                            f"license {event.license_id} is not active on {event.on_date}: "
                            "add its activation (or a renewal) before this line",
                        )
                    ]
                )
                continue
            del open_since[event.license_id]
        yield event


def import_billing_csv(ledger: LicenseLedger, path: Path, today: date) -> BillingImported:
    """Check the whole file against the ledger, then import in one transaction what the ledger does
    not hold yet (importing a file twice changes nothing). Returns how many were imported and left out.

    The rows are streamed into the ledger's import staging as they are checked; any error rolls all
    of it back, and the message is the one `read_billing_csv` gives."""
    with ledger.billing.importing() as batch:
        return _import(batch, path, today)


def _import(batch: BillingImport, path: Path, today: date) -> BillingImported:
    problems = _Problems()
    batch.stage(_checked_events(path, today, problems))
    if not batch.staged and not problems:
        return BillingImported(0)
    recorded = batch.leave_out_recorded() if not problems else 0
    # One pass in date order checks the rows against the ledger and each other and applies them.
    checked = _in_sequence(batch.ordered(), batch.running_terms(), problems)
    try:
        written = batch.write(checked)
    except LedgerError:
        for _ in checked:  # the rest of the rows, for their own errors: those are the message
            pass
        problems.check(path)
        raise
    problems.check(path)  # raises: the transaction is rolled back
    return BillingImported(written, recorded)


def write_billing_csv(ledger: LicenseLedger, out: io.TextIOBase) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for event in ledger.billing.iter_events():
        writer.writerow(
            [event.on_date, event.license_id, event.edition or "", event.period or "", event.kind, event.price or ""]
        )
        count += 1
    return count
