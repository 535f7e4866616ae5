"""The ledger store on SQLAlchemy Core: SQLite (a file, the default) or PostgreSQL (a URL), one code path.

Every method is one short transaction on a pooled connection, so threads and processes can share the
ledger. What differs between the two databases (engine setup, upserts, the per-host lock) lives in
`agent/ledger/sqlite.py` and `agent/ledger/postgresql.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import Connection, case, func, literal, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from agent.errors import LedgerError
from agent.ledger import schema
from agent.ledger.schema import FAR_FUTURE
from agent.secrets import mask, register_secret
from agent.statedir import default_state_dir

LEDGER_ENV = "ISPAGENT_LEDGER"
LEDGER_URL_ENV = "ISPAGENT_LEDGER_URL"
LOCK_WAIT_SECONDS = 60.0
BILLING_KINDS = ("activation", "renewal", "deactivation", "payment")


def ledger_location(vars: Mapping[str, Any] | None = None, state_dir: Path | None = None) -> str | Path:
    """Where the ledger is: `ledger_url` var or $ISPAGENT_LEDGER_URL (a database URL), else the
    SQLite file of `ledger_path` or $ISPAGENT_LEDGER, else <state dir>/ledger.sqlite.

    The state dir is the run's (`run --state-dir`), else $ISPAGENT_STATE_DIR or the default: a
    lab demo with its own state dir must not write into the partner's real ledger.
    """
    vars = vars or {}
    url = vars.get("ledger_url") or os.environ.get(LEDGER_URL_ENV)
    if url:
        return str(url)
    configured = vars.get("ledger_path") or os.environ.get(LEDGER_ENV)
    if configured:
        return Path(str(configured)).expanduser()
    return (state_dir or default_state_dir()) / "ledger.sqlite"


default_ledger_path = ledger_location  # the name the steps use; it may now also be a URL

_opened: dict[str, LicenseLedger] = {}
_opened_lock = threading.Lock()


def open_ledger(location: str | Path) -> LicenseLedger:
    """The process's ledger at `location` (created, or migrated to the current schema, on first use)."""
    key = str(location.absolute()) if isinstance(location, Path) else str(location)
    with _opened_lock:
        if key not in _opened:
            _opened[key] = LicenseLedger(location)
        return _opened[key]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def _backend(location: str | Path):
    if isinstance(location, Path) or "://" not in str(location):
        from agent.ledger.sqlite import SqliteBackend

        return SqliteBackend(Path(location).absolute())
    try:
        url = make_url(str(location))
    except ArgumentError:
        raise LedgerError("ledger_url: not a database URL; write it as postgresql+psycopg://USER:PASSWORD@HOST/DATABASE") from None
    if url.password:
        register_secret(url.password)
    if url.get_backend_name() == "sqlite":
        from agent.ledger.sqlite import SqliteBackend

        return SqliteBackend(Path(url.database or "ledger.sqlite").absolute())
    if url.get_backend_name() != "postgresql":
        raise LedgerError(f"ledger_url: '{url.get_backend_name()}' databases are not supported; use postgresql+psycopg://… or a SQLite path")
    from agent.ledger.postgresql import PostgresBackend

    try:
        return PostgresBackend(str(location))
    except (ImportError, SQLAlchemyError) as error:
        raise LedgerError(f"ledger {url.render_as_string(hide_password=True)}: {mask(str(error).splitlines()[0])}") from None


@dataclass(frozen=True)
class LedgerHost:
    name: str
    remoteid: str  # sent to the account as `remoteid`: finds our licenses when a reply was lost
    address: str
    fqdn: str | None


@dataclass(frozen=True)
class LedgerLicense:
    id: str
    host_name: str | None
    ip: str
    edition: str | None
    period: str | None
    action: str
    state: str


@dataclass(frozen=True)
class OrderIntent:
    host_name: str
    remoteid: str
    ip: str
    edition: str
    period: str
    state: str
    attempts: int
    license_id: str | None


@dataclass(frozen=True)
class Activation:
    id: int
    license_id: str
    host_name: str
    fqdn: str
    remoteid: str
    ip: str
    edition: str | None
    period: str | None
    state: str
    attempts: int


@dataclass(frozen=True)
class BillingEvent:
    """One thing the program bills or that changes what it bills (PARTNER-PROGRAM.md §5)."""

    on_date: str  # YYYY-MM-DD
    kind: str  # activation | renewal | deactivation | payment
    license_id: str  # '' for a payment
    edition: str | None = None
    period: str | None = None
    price: str | None = None  # EUR list price (a payment: the amount paid); None: the program's price
    line: int = 0  # the CSV line it came from, for messages


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


class LicenseLedger:
    def __init__(self, location: str | Path) -> None:
        self.backend = _backend(location)
        self.engine = self.backend.engine
        self.shown = self.backend.shown  # the URL with its password masked, or the file
        self.path = getattr(self.backend, "path", None)
        with self._write() as db:
            self.backend.migration_lock(db)
            schema.migrate(db, utc_now())

    def __repr__(self) -> str:
        return f"LicenseLedger({self.shown!r})"

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Database failures become one LedgerError line naming the ledger (password masked) and the fix."""
        try:
            yield
        except LedgerError:
            raise
        except SQLAlchemyError as error:
            first = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = ""
            if "connect" in first.lower() or "password authentication" in first.lower():
                hint = f"; check that the database is running and reachable, or fix ledger_url / ${LEDGER_URL_ENV}"
            raise LedgerError(mask(f"ledger {self.shown}: {first}{hint}")) from None
        except OSError as error:
            raise LedgerError(mask(f"ledger {self.shown}: {error}")) from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guarded(), self.engine.connect() as db:
            db.execution_options(ledger_write=True)
            with db.begin():
                yield db

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guarded(), self.engine.connect() as db:
            yield db

    def _rows(self, statement) -> list:
        with self._read() as db:
            return list(db.execute(statement).mappings())

    def schema_version(self) -> int:
        with self._read() as db:
            return schema.applied_version(db)

    # -- hosts -----------------------------------------------------------------------------

    def host(self, name: str, address: str, fqdn: str | None) -> LedgerHost:
        """The ledger's record of host `name`, created (with a new remoteid) on first sight."""
        hosts = schema.hosts
        with self._write() as db:
            now = utc_now()
            db.execute(self.backend.insert(hosts).values(
                name=name, remoteid="isp-" + secrets.token_hex(8), address=address, fqdn=fqdn, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["name"]))
            row = db.execute(select(hosts).where(hosts.c.name == name)).mappings().one()
            if (row["address"], row["fqdn"]) != (address, fqdn):
                db.execute(update(hosts).where(hosts.c.name == name).values(address=address, fqdn=fqdn, updated_at=now))
            return LedgerHost(name, row["remoteid"], address, fqdn)

    def hosts(self) -> list[LedgerHost]:
        rows = self._rows(select(schema.hosts).order_by(schema.hosts.c.name))
        return [LedgerHost(r["name"], r["remoteid"], r["address"], r["fqdn"]) for r in rows]

    # -- licenses --------------------------------------------------------------------------

    def license_of_host(self, host_name: str) -> LedgerLicense | None:
        lic = schema.licenses
        rows = self._rows(select(lic).where((lic.c.host_name == host_name) & (lic.c.state == "held"))
                          .order_by(lic.c.updated_at.desc()))
        return _license(rows[0]) if rows else None

    def licenses(self, state: str | None = "held") -> list[LedgerLicense]:
        lic = schema.licenses
        statement = select(lic).order_by(lic.c.id)
        if state is not None:
            statement = statement.where(lic.c.state == state)
        return [_license(r) for r in self._rows(statement)]

    def record_license(self, license_id: str, host_name: str | None, ip: str, edition: str | None,
                       period: str | None, action: str) -> None:
        """Remember that `license_id` serves `host_name` (a host holds one license: others are released)."""
        with self._write() as db:
            self._record_license(db, license_id, host_name, ip, edition, period, action)

    def _record_license(self, db, license_id, host_name, ip, edition, period, action) -> None:
        lic, now = schema.licenses, utc_now()
        if host_name:
            db.execute(update(lic).where((lic.c.host_name == host_name) & (lic.c.id != license_id) & (lic.c.state == "held"))
                       .values(state="gone", updated_at=now))
        statement = self.backend.insert(lic).values(id=license_id, host_name=host_name, ip=ip, edition=edition, period=period,
                                                    action=action, state="held", created_at=now, updated_at=now)
        db.execute(statement.on_conflict_do_update(index_elements=["id"], set_={
            "host_name": statement.excluded.host_name, "ip": statement.excluded.ip,
            "edition": func.coalesce(statement.excluded.edition, lic.c.edition),
            "period": func.coalesce(statement.excluded.period, lic.c.period),
            "state": "held", "updated_at": statement.excluded.updated_at,
        }))
        self._event(db, f"license.{action}", host_name, license_id, {"ip": ip, "edition": edition, "period": period})

    def forget_license(self, license_id: str, reason: str) -> None:
        with self._write() as db:
            db.execute(update(schema.licenses).where(schema.licenses.c.id == license_id).values(state="gone", updated_at=utc_now()))
            self._event(db, "license.gone", None, license_id, {"reason": reason})

    def claim_license(self, license_id: str, host_name: str, ip: str, edition: str | None, period: str | None) -> bool:
        """Reserve a free license for `host_name`; False if another host already holds it."""
        lic = schema.licenses
        with self._write() as db:
            row = db.execute(select(lic.c.host_name, lic.c.state).where(lic.c.id == license_id).with_for_update()).mappings().first()
            if row and row["state"] == "held" and row["host_name"] not in (None, host_name):
                return False
            self._record_license(db, license_id, host_name, ip, edition, period, "reused")
            return True

    # -- orders ----------------------------------------------------------------------------

    def order_intent(self, host_name: str) -> OrderIntent | None:
        rows = self._rows(select(schema.order_intents).where(schema.order_intents.c.host_name == host_name))
        return _intent(rows[0]) if rows else None

    def begin_order(self, host: LedgerHost, ip: str, edition: str, period: str) -> OrderIntent:
        """Durably record "about to order for this host" before the order leaves."""
        intents = schema.order_intents
        with self._write() as db:
            now = utc_now()
            statement = self.backend.insert(intents).values(
                host_name=host.name, remoteid=host.remoteid, ip=ip, edition=edition, period=period, state="ordering",
                attempts=1, license_id=None, created_at=now, updated_at=now)
            db.execute(statement.on_conflict_do_update(index_elements=["host_name"], set_={
                "remoteid": statement.excluded.remoteid, "ip": statement.excluded.ip, "edition": statement.excluded.edition,
                "period": statement.excluded.period, "state": "ordering", "attempts": intents.c.attempts + 1,
                "license_id": None, "updated_at": statement.excluded.updated_at,
            }))
            self._event(db, "order.intent", host.name, None, {"ip": ip, "edition": edition, "period": period})
            return _intent(db.execute(select(intents).where(intents.c.host_name == host.name)).mappings().one())

    def finish_order(self, host_name: str, license_id: str, ip: str, edition: str, period: str) -> None:
        """The order's license id is known: record it, close the intent and bill the activation, in one transaction."""
        intents = schema.order_intents
        with self._write() as db:
            db.execute(update(intents).where(intents.c.host_name == host_name)
                       .values(state="done", license_id=license_id, updated_at=utc_now()))
            self._record_license(db, license_id, host_name, ip, edition, period, "ordered")
            self._bill(db, BillingEvent(utc_today(), "activation", license_id, edition, period), "run", strict=False)

    def refuse_order(self, host_name: str, reason: str) -> None:
        """The account refused the order: provably nothing was bought."""
        intents = schema.order_intents
        with self._write() as db:
            db.execute(update(intents).where(intents.c.host_name == host_name).values(state="refused", updated_at=utc_now()))
            self._event(db, "order.refused", host_name, None, {"reason": reason})

    # -- per-host lock ---------------------------------------------------------------------

    @contextmanager
    def host_lock(self, host_name: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the host's lock: two processes (on one machine or several) never license one host at once."""
        with self.backend.host_lock(self, host_name, wait):
            yield

    # -- activations (outbox) --------------------------------------------------------------

    def queue_activation(self, license_id: str, host: LedgerHost, ip: str, edition: str | None, period: str | None) -> None:
        """Record that `host` runs on `license_id`; pending until the account confirms it."""
        with self._write() as db:
            inserted = db.execute(self.backend.insert(schema.activations).values(
                license_id=license_id, host_name=host.name, fqdn=host.fqdn or host.name, remoteid=host.remoteid, ip=ip,
                edition=edition, period=period, state="pending", attempts=0, created_at=utc_now(),
            ).on_conflict_do_nothing(index_elements=["license_id", "host_name"])).rowcount
            if inserted:
                self._event(db, "activation.queued", host.name, license_id, {"fqdn": host.fqdn})

    def activations(self, host_name: str | None = None, state: str | None = None) -> list[Activation]:
        act = schema.activations
        statement = select(act).order_by(act.c.id)
        if host_name:
            statement = statement.where(act.c.host_name == host_name)
        if state:
            statement = statement.where(act.c.state == state)
        return [_activation(r) for r in self._rows(statement)]

    def confirm_activation(self, activation: Activation) -> None:
        act = schema.activations
        with self._write() as db:
            db.execute(update(act).where(act.c.id == activation.id).values(
                state="confirmed", confirmed_at=utc_now(), attempts=act.c.attempts + 1, last_error=None))
            self._event(db, "activation.confirmed", activation.host_name, activation.license_id, {})

    def activation_failed(self, activation: Activation, error: str) -> None:
        act = schema.activations
        with self._write() as db:
            db.execute(update(act).where(act.c.id == activation.id).values(attempts=act.c.attempts + 1, last_error=mask(error)))

    # -- events ----------------------------------------------------------------------------

    def event(self, kind: str, host_name: str | None, license_id: str | None, **detail: Any) -> None:
        with self._write() as db:
            self._event(db, kind, host_name, license_id, detail)

    def events(self) -> list[dict]:
        return [dict(r) for r in self._rows(select(schema.events).order_by(schema.events.c.id))]

    @staticmethod
    def _event(db, kind: str, host_name: str | None, license_id: str | None, detail: dict) -> None:
        db.execute(schema.events.insert().values(at=utc_now(), kind=kind, host_name=host_name, license_id=license_id,
                                                 detail=mask(json.dumps(detail, sort_keys=True))))

    # -- billing (what the partner program charges; read by agent/economics) ---------------

    def record_billing(self, event: BillingEvent, source: str = "cli") -> None:
        """Record one billing event (a renewal or deletion done from the CLI, a payment)."""
        with self._write() as db:
            self._bill(db, event, source, strict=False)

    def import_billing(self, events: Iterable[BillingEvent]) -> int:
        """Record every event of an import in one transaction: all of them, or (on any error) none."""
        count = 0
        with self._write() as db:
            for event in sorted(events, key=lambda e: (e.on_date, e.line)):
                self._bill(db, event, "import", strict=True)
                count += 1
        return count

    def _bill(self, db, event: BillingEvent, source: str, strict: bool) -> None:
        """Insert the event and keep billing_terms in step. `strict` (imports): contradictions are errors;
        otherwise (runs, reruns) a repeated activation or an unknown deactivation changes nothing."""
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

    def billing_events(self) -> list[BillingEvent]:
        """Every billing event, oldest first (what `ledger export` writes)."""
        ev = schema.billing_events
        rows = self._rows(select(ev).order_by(ev.c.on_date, ev.c.id))
        return [BillingEvent(r["on_date"], r["kind"], r["license_id"], r["edition"], r["period"], r["price"]) for r in rows]

    def first_billing_date(self) -> str | None:
        with self._read() as db:
            return db.execute(select(func.min(schema.billing_events.c.on_date))).scalar()

    def recorded_charges(self, start: str, end: str) -> list[ChargeRow]:
        """Activations and recorded renewals dated in [start, end), one row per day, kind, edition, period, price."""
        ev = schema.billing_events
        statement = (
            select(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price, func.count().label("n"))
            .where(ev.c.on_date >= start, ev.c.on_date < end, ev.c.kind.in_(("activation", "renewal")))
            .group_by(ev.c.on_date, ev.c.kind, ev.c.edition, ev.c.period, ev.c.price)
            .order_by(ev.c.on_date, ev.c.kind)
        )
        return [ChargeRow(r["on_date"], r["kind"], r["edition"], r["period"], r["price"], r["n"]) for r in self._rows(statement)]

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
        for row in self._rows(statement):
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
        return [OpenTerms(r["edition"], r["period"], r["started_on"], r["n"]) for r in self._rows(statement)]

    def active_licenses(self, on_date: str) -> int:
        """Licenses billed and running on `on_date` (marketing support counts these, PARTNER-PROGRAM.md §6)."""
        terms = schema.billing_terms
        with self._read() as db:
            return db.execute(select(func.count()).where(terms.c.started_on <= on_date, terms.c.ended_on > on_date)).scalar()

    def payments_until(self, on_date: str) -> list[tuple[str, str]]:
        """(date, amount) of every payment recorded up to `on_date`."""
        ev = schema.billing_events
        rows = self._rows(select(ev.c.on_date, ev.c.price).where(ev.c.kind == "payment", ev.c.on_date <= on_date).order_by(ev.c.on_date))
        return [(r["on_date"], r["price"] or "0") for r in rows]

    def running_terms(self) -> dict[str, str]:
        """License id -> the day its running billing term started (imports and reconcile check against it)."""
        terms = schema.billing_terms
        rows = self._rows(select(terms.c.license_id, terms.c.started_on).where(terms.c.ended_on == FAR_FUTURE))
        return {r["license_id"]: r["started_on"] for r in rows}


def _at(event: BillingEvent, message: str) -> str:
    return f"line {event.line}: {message}" if event.line else message


def _license(row) -> LedgerLicense:
    return LedgerLicense(row["id"], row["host_name"], row["ip"], row["edition"], row["period"], row["action"], row["state"])


def _intent(row) -> OrderIntent:
    return OrderIntent(row["host_name"], row["remoteid"], row["ip"], row["edition"], row["period"], row["state"],
                       row["attempts"], row["license_id"])


def _activation(row) -> Activation:
    return Activation(row["id"], row["license_id"], row["host_name"], row["fqdn"], row["remoteid"], row["ip"],
                      row["edition"], row["period"], row["state"], row["attempts"])
