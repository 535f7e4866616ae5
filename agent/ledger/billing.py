"""The ledger's billing: what the partner program charges, as events and the terms they open and close.

Written by licensing (an order's activation, a renewal, a deletion) and by imports; read by
`agent/economics`. Events are activations, renewals, deactivations and payments (the program's
§5); `billing_terms` keeps one row per stretch of time a license is billed, so implied renewals are
read without walking the history.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
    update,
)

from agent.errors import LedgerError
from agent.gcpause import cycle_collection_paused
from agent.ledger import schema
from agent.ledger.database import LedgerDatabase, utc_now
from agent.ledger.schema import FAR_FUTURE

BILLING_KINDS = ("activation", "renewal", "deactivation", "payment")


class BillingEvent(NamedTuple):
    """One thing the program bills or that changes what it bills (program §5).

    A NamedTuple, not a frozen dataclass: an import makes two per row (read, then read back in date
    order) and a frozen dataclass takes 1.2 µs to make, a NamedTuple 0.35 µs."""

    on_date: str  # YYYY-MM-DD
    kind: str  # activation | renewal | deactivation | payment
    license_id: str  # '' for a payment
    edition: str | None = None
    period: str | None = None
    price: str | None = None  # EUR list price (a payment: the amount paid); None: the program's price
    line: int = 0  # the CSV line it came from, for messages


def event_key(event: BillingEvent) -> tuple[object, ...]:
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

        The same rules as `bill(strict=True)`, applied in date order (`BillingImport`); raises
        LedgerError naming the line of the first contradiction."""
        with self.importing() as batch:
            batch.stage(events)
            return batch.write()

    @contextmanager
    def importing(self) -> Iterator[BillingImport]:
        """An import in its one transaction (committed when the block ends, rolled back if it raises)."""
        with self.db.write() as db, _large_page_cache(db), cycle_collection_paused():
            batch = BillingImport(db)
            yield batch
            batch.close()

    @staticmethod
    def bill(db: Connection, event: BillingEvent, source: str, strict: bool) -> None:
        """Insert the event and keep billing_terms in step, inside the caller's transaction.

        `strict` (imports): contradictions are errors; otherwise (runs, reruns) a repeated activation
        or an unknown deactivation changes nothing.
        """
        terms = schema.billing_terms
        open_term = None
        if event.license_id:
            open_term = (
                db.execute(
                    select(terms)
                    .where((terms.c.license_id == event.license_id) & (terms.c.ended_on == FAR_FUTURE))
                    .with_for_update()
                )
                .mappings()
                .first()
            )
        if event.kind == "activation" and open_term is not None:
            if strict:
                raise LedgerError(
                    _at(
                        event,
                        f"license {event.license_id} is already active since {open_term['started_on']}: "
                        "a second activation needs a deactivation before it (or is it a renewal?)",
                    )
                )
            return
        if event.kind == "deactivation" and open_term is None:
            if strict:
                raise LedgerError(
                    _at(
                        event,
                        f"license {event.license_id} is not active in the ledger on {event.on_date}: "
                        "add its activation (or a renewal) before this line",
                    )
                )
            return
        if event.kind == "deactivation" and open_term is not None and open_term["started_on"] > event.on_date:
            raise LedgerError(
                _at(
                    event,
                    f"license {event.license_id} is deactivated on {event.on_date}, before its "
                    f"activation on {open_term['started_on']}: fix the date",
                )
            )
        db.execute(
            schema.billing_events.insert().values(
                on_date=event.on_date,
                kind=event.kind,
                license_id=event.license_id,
                edition=event.edition,
                period=event.period,
                price=event.price,
                source=source,
                created_at=utc_now(),
            )
        )
        if event.kind in ("activation", "renewal") and open_term is None:
            db.execute(
                terms.insert().values(
                    license_id=event.license_id,
                    edition=event.edition,
                    period=event.period,
                    started_on=event.on_date,
                    ended_on=FAR_FUTURE,
                )
            )
        elif event.kind == "deactivation" and open_term is not None:  # None: returned above
            db.execute(update(terms).where(terms.c.id == open_term["id"]).values(ended_on=event.on_date))

    # -- reads -----------------------------------------------------------------------------

    def events(self) -> list[BillingEvent]:
        """Every billing event, oldest first."""
        return list(self.iter_events())

    def iter_events(self, batch: int = 10_000) -> Iterator[BillingEvent]:
        """Every billing event, oldest first, fetched `batch` rows at a time (what `ledger export`
        streams: a million events are never all in memory)."""
        ev = schema.billing_events
        statement = select(ev.c.on_date, ev.c.kind, ev.c.license_id, ev.c.edition, ev.c.period, ev.c.price).order_by(
            ev.c.on_date, ev.c.id
        )
        with self.db.read() as db:
            result = db.execution_options(stream_results=True, yield_per=batch).execute(statement)
            for on_date, kind, license_id, edition, period, price in result:
                yield BillingEvent(on_date, kind, license_id, edition, period, price)

    def recorded_counts(self, first_day: str, last_day: str) -> Counter[tuple[object, ...]]:
        """How many events the ledger holds between the two days (inclusive), by `event_key`."""
        ev = schema.billing_events
        columns = (ev.c.on_date, ev.c.kind, ev.c.license_id, ev.c.edition, ev.c.period, ev.c.price)
        rows = self.db.rows(
            select(*columns, func.count().label("n"))
            .where(ev.c.on_date.between(first_day, last_day))
            .group_by(*columns)
        )
        return Counter(
            {(r["on_date"], r["kind"], r["license_id"], r["edition"], r["period"], r["price"]): r["n"] for r in rows}
        )

    def first_date(self) -> str | None:
        first: str | None = self.db.scalar(select(func.min(schema.billing_events.c.on_date)))
        return first

    def recorded_charges(self, start: str, end: str) -> list[ChargeRow]:
        """Activations and recorded renewals dated in [start, end), one row per day, kind, edition, period, price."""
        ev = schema.billing_events
        statement = (
            select(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price, func.count().label("n"))
            .where(ev.c.on_date >= start, ev.c.on_date < end, ev.c.kind.in_(("activation", "renewal")))
            .group_by(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price)
            .order_by(ev.c.on_date, ev.c.kind)
        )
        return [
            ChargeRow(r["on_date"], r["kind"], r["edition"], r["period"], r["price"], r["n"])
            for r in self.db.rows(statement)
        ]

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
            .where(
                terms.c.ended_on >= start,
                terms.c.started_on < start,
                (terms.c.period == "monthly") | (func.substr(terms.c.started_on, 6, 2) == start[5:7]),
                terms.c.license_id.not_in(recorded),
            )
            .group_by("edition", "period", "day", "ended")
        )
        counts: dict[tuple[str, str, str], int] = {}
        for row in self.db.rows(statement):
            renews_on = f"{start[:8]}{min(int(row['day']), days_in_month):02d}"
            if row["ended"] > renews_on:
                key = (renews_on, row["edition"], row["period"])
                counts[key] = counts.get(key, 0) + row["n"]
        return [
            ChargeRow(on, "renewal", edition, period, None, n, implied=True)
            for (on, edition, period), n in sorted(counts.items())
        ]

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
        running = select(func.count()).where(terms.c.started_on <= on_date, terms.c.ended_on > on_date)
        count: int = self.db.scalar(running)
        return count

    def payments_until(self, on_date: str) -> list[tuple[str, str]]:
        """(date, amount) of every payment recorded up to `on_date`."""
        ev = schema.billing_events
        rows = self.db.rows(
            select(ev.c.on_date, ev.c.price)
            .where(ev.c.kind == "payment", ev.c.on_date <= on_date)
            .order_by(ev.c.on_date)
        )
        return [(r["on_date"], r["price"] or "0") for r in rows]

    def running_terms(self) -> dict[str, str]:
        """License id -> the day its running billing term started (imports and reconcile check against it)."""
        terms = schema.billing_terms
        rows = self.db.rows(select(terms.c.license_id, terms.c.started_on).where(terms.c.ended_on == FAR_FUTURE))
        return {r["license_id"]: r["started_on"] for r in rows}


CHUNK = 20_000  # rows per executemany and per fetch while importing

_STAGED = Table(
    "billing_import",
    MetaData(),
    # Kept in date order (SQLite: clustered on the key, a file in date order is appended to): the
    # passes in date order read it as it lies, with no sort of a million rows each. The columns up
    # to `line` are BillingEvent's fields in its order: a staged row is an event and its `seq`.
    Column("on_date", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("license_id", String, nullable=False),
    Column("edition", String),
    Column("period", String),
    Column("price", String),
    Column("line", Integer, nullable=False),
    Column("seq", Integer, primary_key=True),  # order in the input: ties of date keep it
    Column("recorded", Integer, nullable=False, server_default="0"),  # 1: the ledger holds it already, left out
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)
_KEY = ("on_date", "kind", "license_id", "edition", "period", "price")  # what `event_key` compares


class BillingImport:
    """An import in progress inside its one transaction.

    Events are staged in a temporary table `CHUNK` rows at a time, then checked and applied in date
    order straight from it: a million-row import never holds its rows in memory (it peaked at
    880 MB when it did), and a failure anywhere still rolls all of it back.
    """

    def __init__(self, db: Connection) -> None:
        self.db = db
        self.staged = 0
        self.left_out = 0  # staged, but already in the ledger
        _STAGED.create(db)

    def stage(self, events: Iterable[BillingEvent]) -> None:
        """Add `events` (consumed lazily) after those already staged."""
        columns = (*BillingEvent._fields, "seq")
        for chunk in _batched(events):
            start, self.staged = self.staged, self.staged + len(chunk)
            _insert_many(self.db, _STAGED, columns, (event + (seq,) for seq, event in enumerate(chunk, start)))

    def running_terms(self) -> dict[str, str]:
        """License id -> the day its running term started, as the ledger holds it in this transaction."""
        terms = schema.billing_terms
        rows = self.db.execute(select(terms.c.license_id, terms.c.started_on).where(terms.c.ended_on == FAR_FUTURE))
        return {license_id: started_on for license_id, started_on in rows}

    def leave_out_recorded(self) -> int:
        """Leave out staged events the ledger already holds, matched by `event_key` and by count (two
        equal rows in the file, one in the ledger: the second is new). Returns how many."""
        held = schema.billing_events
        span = self.db.execute(select(func.min(_STAGED.c.on_date), func.max(_STAGED.c.on_date))).one()
        if (
            span[0] is None
            or self.db.execute(select(held.c.id).where(held.c.on_date.between(*span)).limit(1)).first() is None
        ):
            return 0  # nothing in the ledger in those days: no need to number a million rows
        same = " AND ".join(f"numbered.{name} {self._same} held.{name}" for name in _KEY)
        key = ", ".join(_KEY)
        self.db.exec_driver_sql(
            f"""
            UPDATE billing_import SET recorded = 1 WHERE seq IN (
              SELECT numbered.seq FROM
                (SELECT seq, {key}, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY seq) AS n FROM billing_import) numbered
              JOIN (SELECT {key}, COUNT(*) AS c FROM billing_events WHERE on_date BETWEEN {self._param(0)} AND {self._param(1)}
                    GROUP BY {key}) held
                ON {same} AND numbered.n <= held.c)""",
            self._params(span),
        )
        self.left_out = self.db.execute(
            select(func.count()).select_from(_STAGED).where(_STAGED.c.recorded == 1)
        ).scalar_one()
        return self.left_out

    def ordered(self) -> Iterator[BillingEvent]:
        """The staged events not left out, in date order (then input order), fetched in chunks."""
        staged = _STAGED.c
        statement = (
            select(*(staged[name] for name in BillingEvent._fields))
            .where(staged.recorded == 0)
            .order_by(staged.on_date, staged.seq)
        )
        for rows in _fetched(self.db, statement):
            yield from map(BillingEvent._make, rows)

    def write(self, events: Iterable[BillingEvent] | None = None) -> int:
        """Apply the staged events (`bill(strict=True)`'s rules, in date order) and insert them; returns how many.

        `events`: `ordered()` as the caller passes it through its own checks (one pass, not two)."""
        terms = schema.billing_terms
        running = {
            row.license_id: _Term(row.id, row.license_id, row.edition, row.period, row.started_on)
            for row in self.db.execute(
                select(terms.c.id, terms.c.license_id, terms.c.edition, terms.c.period, terms.c.started_on)
                .where(terms.c.ended_on == FAR_FUTURE)
                .with_for_update()
            )
        }
        writer = _TermWriter(self.db)
        _apply_terms(self.ordered() if events is None else events, running, writer.settled)
        writer.flush(running.values())
        staged, billing_events = _STAGED.c, schema.billing_events
        columns = ("on_date", "kind", "license_id", "edition", "period", "price")
        chosen = (
            select(*(staged[name] for name in columns), literal("import"), literal(utc_now()))
            .where(staged.recorded == 0)
            .order_by(staged.on_date, staged.seq)
        )
        self.db.execute(billing_events.insert().from_select([*columns, "source", "created_at"], chosen))
        return self.staged - self.left_out  # not the insert's rowcount: psycopg gives -1 for INSERT ... SELECT here

    def close(self) -> None:
        _STAGED.drop(self.db)  # SQLite keeps a temporary table for the connection's life, and the pool reuses it

    @property
    def _same(self) -> str:
        return "IS" if self.db.dialect.name == "sqlite" else "IS NOT DISTINCT FROM"  # NULL edition equals NULL

    def _param(self, n: int) -> str:
        return "?" if self.db.dialect.paramstyle == "qmark" else f"%(p{n})s"

    def _params(self, values: Iterable[object]) -> tuple[object, ...] | dict[str, object]:
        return tuple(values) if self.db.dialect.paramstyle == "qmark" else {f"p{n}": v for n, v in enumerate(values)}


def _fetched(db: Connection, statement: Select[Any]) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of `statement`, CHUNK at a time, without a Row object per row (a third of an import's
    time when it had one). SQLite's cursor steps through the result; other databases stream it from
    a server-side cursor (the options go on the statement: a connection's would stay with it)."""
    if db.dialect.name != "sqlite":
        yield from db.execute(statement.execution_options(stream_results=True, yield_per=CHUNK)).partitions()
        return
    compiled = statement.compile(dialect=db.dialect)
    cursor = _driver_cursor(db)
    try:
        cursor.execute(str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ()))
        while rows := cursor.fetchmany(CHUNK):
            yield rows
    finally:
        cursor.close()


def _batched(events: Iterable[BillingEvent]) -> Iterator[tuple[BillingEvent, ...]]:
    """`events` CHUNK at a time (itertools.batched, which Python 3.11 lacks)."""
    iterator = iter(events)
    while chunk := tuple(itertools.islice(iterator, CHUNK)):
        yield chunk


@contextmanager
def _large_page_cache(db: Connection, kibibytes: int = 48 * 1024) -> Iterator[None]:
    """SQLite only: a page cache big enough for the indexes a large import fills (its default is
    2 MB, and a million-row import then spends half its time re-reading index pages). Restored after,
    since the connection goes back to the pool."""
    if db.dialect.name != "sqlite":
        yield
        return
    before = db.exec_driver_sql("PRAGMA cache_size").scalar_one()
    db.exec_driver_sql(f"PRAGMA cache_size=-{kibibytes}")
    try:
        yield
    finally:
        db.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def _driver_cursor(db: Connection) -> Any:
    """A DB-API cursor of `db`'s connection. Any: the drivers' executemany takes any iterable of rows
    (fed lazily here), where the DB-API stubs ask for a sequence."""
    driver = db.connection.dbapi_connection
    if driver is None:
        raise LedgerError("the ledger's database connection is closed")
    return driver.cursor()


def _insert_many(db: Connection, table: Table, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
    """INSERT every row with the driver's executemany, inside `db`'s transaction.

    SQLAlchemy's executemany turns each row into a dict and processes every parameter: a third of
    a million-row import. The statement is still compiled by SQLAlchemy for the connection's
    dialect (SQLite's ? or psycopg's %(name)s), and rows are fed lazily, never all in a list.
    """
    compiled = table.insert().compile(dialect=db.dialect, column_keys=list(columns))
    parameters: Iterable[tuple[Any, ...]] | Iterable[dict[str, Any]]
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup or ()]
        parameters = (tuple(row[i] for i in order) for row in rows) if order != list(range(len(columns))) else rows
    else:
        parameters = (dict(zip(columns, row)) for row in rows)
    cursor = _driver_cursor(db)
    try:
        cursor.executemany(str(compiled), parameters)
    finally:
        cursor.close()


@dataclass(slots=True)  # one per license still running while an import is applied: hundreds of thousands
class _Term:
    """A billing term while an import is applied in memory; `id` None: created by this import."""

    id: int | None
    license_id: str
    edition: str | None
    period: str | None
    started_on: str
    ended_on: str = FAR_FUTURE


class _TermWriter:
    """billing_terms rows an import opens and ends, written `CHUNK` at a time as they are settled:
    only the terms still running stay in memory."""

    def __init__(self, db: Connection) -> None:
        self.db = db
        self.opened: list[_Term] = []  # opened and ended by this import: complete
        self.ended: list[_Term] = []  # already in the ledger, ended by this import

    def settled(self, term: _Term) -> None:
        (self.ended if term.id is not None else self.opened).append(term)
        if len(self.opened) + len(self.ended) >= CHUNK:
            self.flush()

    def flush(self, still_open: Iterable[_Term] = ()) -> None:
        opened = itertools.chain(self.opened, (t for t in still_open if t.id is None))
        _insert_many(
            self.db,
            schema.billing_terms,
            ("license_id", "edition", "period", "started_on", "ended_on"),
            ((t.license_id, t.edition, t.period, t.started_on, t.ended_on) for t in opened),
        )
        if self.ended:
            terms = schema.billing_terms
            self.db.execute(
                update(terms).where(terms.c.id == bindparam("term_id")).values(ended_on=bindparam("on")),
                [dict(term_id=t.id, on=t.ended_on) for t in self.ended],
            )
        self.opened, self.ended = [], []


def _apply_terms(events: Iterable[BillingEvent], running: dict[str, _Term], settled: Callable[[_Term], None]) -> None:
    """Open and end terms for `events` in date order (`settled` gets each term ended); raises
    LedgerError with the line of the first contradiction, as `BillingBook.bill` does."""
    shared: dict[str | None, str | None] = {}  # one string per edition and period: running terms keep them
    for event in events:
        if not event.license_id:  # a payment
            continue
        open_term = running.get(event.license_id)
        if event.kind == "activation" and open_term is not None:
            raise LedgerError(
                _at(
                    event,
                    f"license {event.license_id} is already active since {open_term.started_on}: "
                    "a second activation needs a deactivation before it (or is it a renewal?)",
                )
            )
        if event.kind == "deactivation":
            if open_term is None:
                raise LedgerError(
                    _at(
                        event,
                        f"license {event.license_id} is not active in the ledger on {event.on_date}: "
                        "add its activation (or a renewal) before this line",
                    )
                )
            if open_term.started_on > event.on_date:
                raise LedgerError(
                    _at(
                        event,
                        f"license {event.license_id} is deactivated on {event.on_date}, before its "
                        f"activation on {open_term.started_on}: fix the date",
                    )
                )
            open_term.ended_on = event.on_date
            del running[event.license_id]
            settled(open_term)
        elif event.kind in ("activation", "renewal") and open_term is None:
            edition, period = (
                shared.setdefault(event.edition, event.edition),
                shared.setdefault(event.period, event.period),
            )
            running[event.license_id] = _Term(None, event.license_id, edition, period, event.on_date)


def _at(event: BillingEvent, message: str) -> str:
    return f"line {event.line}: {message}" if event.line else message
