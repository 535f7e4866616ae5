"""The ledger's billing: what the partner program charges, as events and the terms they open and close.

Written by licensing (an order's activation, a renewal, a deletion) and by imports; read by
`agent/economics`. Events are activations, renewals, deactivations and payments (the program's
§5); `billing_terms` keeps one row per stretch of time a license is billed, so implied renewals are
read without walking the history.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from sqlalchemy import Connection, bindparam, case, func, literal, select, update

from agent.errors import LedgerError
from agent.ledger import schema
from agent.ledger.database import LedgerDatabase, utc_now
from agent.ledger.schema import FAR_FUTURE

BILLING_KINDS = ("activation", "renewal", "deactivation", "payment")


@dataclass(frozen=True)
class BillingEvent:
    """One thing the program bills or that changes what it bills (program §5)."""

    on_date: str  # YYYY-MM-DD
    kind: str  # activation | renewal | deactivation | payment
    license_id: str  # '' for a payment
    edition: str | None = None
    period: str | None = None
    price: str | None = None  # EUR list price (a payment: the amount paid); None: the program's price
    line: int = 0  # the CSV line it came from, for messages


def event_key(event: BillingEvent) -> tuple:
    """What makes two billing events the same event (the CSV line it came from does not)."""
    return (event.on_date, event.kind, event.license_id, event.edition, event.period, event.price)


@dataclass(frozen=True)
class ChargeRow:
    """Charges of one kind on one day, as the ledger holds them (`price` None: the program's list price)."""

    on_date: str
    kind: str  # activation | renewal
    edition: str
    period: str
    price: str | None
    quantity: int
    implied: bool = False  # a renewal inferred from a running term, not a recorded one


@dataclass(frozen=True)
class OpenTerms:
    """Licenses billed and running: how many per edition, period and day they started."""

    edition: str
    period: str
    started_on: str
    count: int


class BillingBook:
    """The billing tables of one ledger database."""

    def __init__(self, db: LedgerDatabase) -> None:
        self.db = db

    # -- writes ----------------------------------------------------------------------------

    def record(self, event: BillingEvent, source: str = "cli") -> None:
        """Record one billing event (a renewal or deletion, a payment); a repeat changes nothing."""
        with self.db.write() as db:
            self.bill(db, event, source, strict=False)

    def import_events(self, events: Iterable[BillingEvent]) -> int:
        """Record every event of an import in one transaction: all of them, or (on any error) none.

        The same rules as `bill(strict=True)`, applied in memory against the running terms read once
        inside the transaction, then written with one executemany per table: a row-by-row import of a
        partner's years of history (hundreds of thousands of rows) took minutes per 10 000 rows.
        """
        ordered = sorted(events, key=lambda e: (e.on_date, e.line))
        with self.db.write() as db, _large_page_cache(db):
            terms = schema.billing_terms
            running = {row.license_id: _Term(row.id, row.license_id, row.edition, row.period, row.started_on)
                       for row in db.execute(select(terms.c.id, terms.c.license_id, terms.c.edition, terms.c.period,
                                                    terms.c.started_on).where(terms.c.ended_on == FAR_FUTURE).with_for_update())}
            new_terms, ended = _apply_in_memory(ordered, running)
            created_at = utc_now()
            _insert_many(db, schema.billing_events, ("on_date", "kind", "license_id", "edition", "period", "price", "source", "created_at"),
                         ((e.on_date, e.kind, e.license_id, e.edition, e.period, e.price, "import", created_at) for e in ordered))
            _insert_many(db, terms, ("license_id", "edition", "period", "started_on", "ended_on"),
                         ((t.license_id, t.edition, t.period, t.started_on, t.ended_on) for t in new_terms))
            if ended:
                db.execute(update(terms).where(terms.c.id == bindparam("term_id")).values(ended_on=bindparam("on")),
                           [dict(term_id=t.id, on=t.ended_on) for t in ended])
        return len(ordered)

    @staticmethod
    def bill(db: Connection, event: BillingEvent, source: str, strict: bool) -> None:
        """Insert the event and keep billing_terms in step, inside the caller's transaction.

        `strict` (imports): contradictions are errors; otherwise (runs, reruns) a repeated activation
        or an unknown deactivation changes nothing.
        """
        terms = schema.billing_terms
        open_term = None
        if event.license_id:
            open_term = db.execute(select(terms).where((terms.c.license_id == event.license_id) & (terms.c.ended_on == FAR_FUTURE))
                                   .with_for_update()).mappings().first()
        if event.kind == "activation" and open_term is not None:
            if strict:
                raise LedgerError(_at(event, f"license {event.license_id} is already active since {open_term['started_on']}: "
                                             "a second activation needs a deactivation before it (or is it a renewal?)"))
            return
        if event.kind == "deactivation" and open_term is None:
            if strict:
                raise LedgerError(_at(event, f"license {event.license_id} is not active in the ledger on {event.on_date}: "
                                             "add its activation (or a renewal) before this line"))
            return
        if event.kind == "deactivation" and open_term["started_on"] > event.on_date:
            raise LedgerError(_at(event, f"license {event.license_id} is deactivated on {event.on_date}, before its "
                                         f"activation on {open_term['started_on']}: fix the date"))
        db.execute(schema.billing_events.insert().values(
            on_date=event.on_date, kind=event.kind, license_id=event.license_id, edition=event.edition, period=event.period,
            price=event.price, source=source, created_at=utc_now()))
        if event.kind in ("activation", "renewal") and open_term is None:
            db.execute(terms.insert().values(license_id=event.license_id, edition=event.edition, period=event.period,
                                             started_on=event.on_date, ended_on=FAR_FUTURE))
        elif event.kind == "deactivation":
            db.execute(update(terms).where(terms.c.id == open_term["id"]).values(ended_on=event.on_date))

    # -- reads -----------------------------------------------------------------------------

    def events(self) -> list[BillingEvent]:
        """Every billing event, oldest first."""
        return list(self.iter_events())

    def iter_events(self, batch: int = 10_000) -> Iterator[BillingEvent]:
        """Every billing event, oldest first, fetched `batch` rows at a time (what `ledger export`
        streams: a million events are never all in memory)."""
        ev = schema.billing_events
        statement = select(ev.c.on_date, ev.c.kind, ev.c.license_id, ev.c.edition, ev.c.period, ev.c.price).order_by(ev.c.on_date, ev.c.id)
        with self.db.read() as db:
            result = db.execution_options(stream_results=True, yield_per=batch).execute(statement)
            for on_date, kind, license_id, edition, period, price in result:
                yield BillingEvent(on_date, kind, license_id, edition, period, price)

    def recorded_counts(self, first_day: str, last_day: str) -> Counter:
        """How many events the ledger holds between the two days (inclusive), by `event_key`."""
        ev = schema.billing_events
        columns = (ev.c.on_date, ev.c.kind, ev.c.license_id, ev.c.edition, ev.c.period, ev.c.price)
        rows = self.db.rows(select(*columns, func.count().label("n")).where(ev.c.on_date.between(first_day, last_day))
                            .group_by(*columns))
        return Counter({(r["on_date"], r["kind"], r["license_id"], r["edition"], r["period"], r["price"]): r["n"]
                        for r in rows})

    def first_date(self) -> str | None:
        return self.db.scalar(select(func.min(schema.billing_events.c.on_date)))

    def recorded_charges(self, start: str, end: str) -> list[ChargeRow]:
        """Activations and recorded renewals dated in [start, end), one row per day, kind, edition, period, price."""
        ev = schema.billing_events
        statement = (
            select(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price, func.count().label("n"))
            .where(ev.c.on_date >= start, ev.c.on_date < end, ev.c.kind.in_(("activation", "renewal")))
            .group_by(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price)
            .order_by(ev.c.on_date, ev.c.kind)
        )
        return [ChargeRow(r["on_date"], r["kind"], r["edition"], r["period"], r["price"], r["n"]) for r in self.db.rows(statement)]

    def implied_renewals(self, start: str, end: str, days_in_month: int) -> list[ChargeRow]:
        """Renewals of running terms that fall in the month [start, end) and were not recorded.

        A monthly license renews every month on the day it started (the month's last day when that
        day does not exist), an annual one every 12 months; a license deactivated on or before that
        day is not renewed.
        """
        terms, ev = schema.billing_terms, schema.billing_events
        day = func.substr(terms.c.started_on, 9, 2)
        ended = case((terms.c.ended_on < end, terms.c.ended_on), else_=literal(FAR_FUTURE))  # later ends: running
        recorded = select(ev.c.license_id).where(ev.c.kind == "renewal", ev.c.on_date >= start, ev.c.on_date < end)
        statement = (
            select(terms.c.edition, terms.c.period, day.label("day"), ended.label("ended"), func.count().label("n"))
            .where(terms.c.ended_on >= start, terms.c.started_on < start,
                   (terms.c.period == "monthly") | (func.substr(terms.c.started_on, 6, 2) == start[5:7]),
                   terms.c.license_id.not_in(recorded))
            .group_by("edition", "period", "day", "ended")
        )
        counts: dict[tuple[str, str, str], int] = {}
        for row in self.db.rows(statement):
            renews_on = f"{start[:8]}{min(int(row['day']), days_in_month):02d}"
            if row["ended"] > renews_on:
                key = (renews_on, row["edition"], row["period"])
                counts[key] = counts.get(key, 0) + row["n"]
        return [ChargeRow(on, "renewal", edition, period, None, n, implied=True)
                for (on, edition, period), n in sorted(counts.items())]

    def open_terms(self, on_date: str) -> list[OpenTerms]:
        """Terms running on `on_date` (started on or before it, not ended by it), grouped by start day."""
        terms = schema.billing_terms
        statement = (
            select(terms.c.edition, terms.c.period, terms.c.started_on, func.count().label("n"))
            .where(terms.c.started_on <= on_date, terms.c.ended_on > on_date)
            .group_by(terms.c.edition, terms.c.period, terms.c.started_on)
        )
        return [OpenTerms(r["edition"], r["period"], r["started_on"], r["n"]) for r in self.db.rows(statement)]

    def active_licenses(self, on_date: str) -> int:
        """Licenses billed and running on `on_date` (marketing support counts these, program §6)."""
        terms = schema.billing_terms
        return self.db.scalar(select(func.count()).where(terms.c.started_on <= on_date, terms.c.ended_on > on_date))

    def payments_until(self, on_date: str) -> list[tuple[str, str]]:
        """(date, amount) of every payment recorded up to `on_date`."""
        ev = schema.billing_events
        rows = self.db.rows(select(ev.c.on_date, ev.c.price).where(ev.c.kind == "payment", ev.c.on_date <= on_date).order_by(ev.c.on_date))
        return [(r["on_date"], r["price"] or "0") for r in rows]

    def running_terms(self) -> dict[str, str]:
        """License id -> the day its running billing term started (imports and reconcile check against it)."""
        terms = schema.billing_terms
        rows = self.db.rows(select(terms.c.license_id, terms.c.started_on).where(terms.c.ended_on == FAR_FUTURE))
        return {r["license_id"]: r["started_on"] for r in rows}


@contextmanager
def _large_page_cache(db: Connection, kibibytes: int = 256 * 1024) -> Iterator[None]:
    """SQLite only: a page cache big enough for the indexes a large import fills (its default is
    2 MB, and a million-row import then spends half its time re-reading index pages). Restored after,
    since the connection goes back to the pool."""
    if db.dialect.name != "sqlite":
        yield
        return
    before = db.exec_driver_sql("PRAGMA cache_size").scalar()
    db.exec_driver_sql(f"PRAGMA cache_size=-{kibibytes}")
    try:
        yield
    finally:
        db.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def _insert_many(db: Connection, table, columns: tuple[str, ...], rows: Iterator[tuple]) -> None:
    """INSERT every row with the driver's executemany, inside `db`'s transaction.

    SQLAlchemy's executemany turns each row into a dict and processes every parameter: a third of
    a million-row import. The statement is still compiled by SQLAlchemy for the connection's
    dialect (SQLite's ? or psycopg's %(name)s), and rows are fed lazily, never all in a list.
    """
    compiled = table.insert().compile(dialect=db.dialect, column_keys=list(columns))
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup]
        parameters = (tuple(row[i] for i in order) for row in rows) if order != list(range(len(columns))) else rows
    else:
        parameters = (dict(zip(columns, row)) for row in rows)
    cursor = db.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(str(compiled), parameters)
    finally:
        cursor.close()


@dataclass
class _Term:
    """A billing term while an import is applied in memory; `id` None: created by this import."""

    id: int | None
    license_id: str
    edition: str | None
    period: str | None
    started_on: str
    ended_on: str = FAR_FUTURE


def _apply_in_memory(events: list[BillingEvent], running: dict[str, _Term]) -> tuple[list[_Term], list[_Term]]:
    """(terms this import opens, terms already in the ledger it ends) for events in date order;
    raises LedgerError with the line of the first contradiction, as `BillingBook.bill` does."""
    new_terms: list[_Term] = []
    ended: list[_Term] = []
    for event in events:
        if not event.license_id:  # a payment
            continue
        open_term = running.get(event.license_id)
        if event.kind == "activation" and open_term is not None:
            raise LedgerError(_at(event, f"license {event.license_id} is already active since {open_term.started_on}: "
                                         "a second activation needs a deactivation before it (or is it a renewal?)"))
        if event.kind == "deactivation":
            if open_term is None:
                raise LedgerError(_at(event, f"license {event.license_id} is not active in the ledger on {event.on_date}: "
                                             "add its activation (or a renewal) before this line"))
            if open_term.started_on > event.on_date:
                raise LedgerError(_at(event, f"license {event.license_id} is deactivated on {event.on_date}, before its "
                                             f"activation on {open_term.started_on}: fix the date"))
            open_term.ended_on = event.on_date
            del running[event.license_id]
            if open_term.id is not None:
                ended.append(open_term)
        elif event.kind in ("activation", "renewal") and open_term is None:
            term = _Term(None, event.license_id, event.edition, event.period, event.on_date)
            running[event.license_id] = term
            new_terms.append(term)
    return new_terms, ended


def _at(event: BillingEvent, message: str) -> str:
    return f"line {event.line}: {message}" if event.line else message
