"""The ledger's licensing records: hosts, the licenses they hold, orders in flight, the per-host
lock, the activation outbox and the event log.

`LicenseLedger` is what callers open: these records, and the same database's billing as
`ledger.billing` (agent/ledger/billing.py). An order's license id and its activation are written in
one transaction, so what was bought is always billed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, RowMapping, cast, extract, func, select, update

from agent.ledger import schema
from agent.ledger.billing import BillingBook, BillingEvent
from agent.ledger.database import LOCK_WAIT_SECONDS, LedgerDatabase, utc_now, utc_today
from agent.secrets import mask

# Ids bound in one `IN (...)` (SQLite allows 32 766 variables a statement, older builds 999).
IDS_PER_QUERY = 900


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
class BreakerRow:
    account: str
    tripped_at: float
    probe_at: float
    message: str


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


class LicenseLedger:
    """The ledger at `location` (a SQLite path or a database URL). Close it when done, or use `with`."""

    def __init__(self, location: str | Path) -> None:
        self.db = LedgerDatabase(location)
        self.billing = BillingBook(self.db)
        self.backend, self.engine, self.shown, self.path = self.db.backend, self.db.engine, self.db.shown, self.db.path

    def __repr__(self) -> str:
        return f"LicenseLedger({self.shown!r})"

    def __enter__(self) -> LicenseLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Dispose of the database engine (its pooled connections). Idempotent."""
        self.db.close()

    @property
    def closed(self) -> bool:
        return self.db.closed

    def schema_version(self) -> int:
        return self.db.schema_version()

    def billing_events(self) -> list[BillingEvent]:
        """Every billing event, oldest first (`ledger.billing.events()`)."""
        return self.billing.events()

    # -- hosts -----------------------------------------------------------------------------

    def host(self, name: str, address: str, fqdn: str | None) -> LedgerHost:
        """The ledger's record of host `name`, created (with a new remoteid) on first sight."""
        hosts = schema.hosts
        with self.db.write() as db:
            now = utc_now()
            db.execute(
                self.backend.insert(hosts)
                .values(
                    name=name,
                    remoteid="isp-" + secrets.token_hex(8),
                    address=address,
                    fqdn=fqdn,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = db.execute(select(hosts).where(hosts.c.name == name)).mappings().one()
            if (row["address"], row["fqdn"]) != (address, fqdn):
                db.execute(update(hosts).where(hosts.c.name == name).values(address=address, fqdn=fqdn, updated_at=now))
            return LedgerHost(name, row["remoteid"], address, fqdn)

    def hosts(self) -> list[LedgerHost]:
        rows = self.db.rows(select(schema.hosts).order_by(schema.hosts.c.name))
        return [_host(r) for r in rows]

    def known_host(self, name: str) -> LedgerHost | None:
        """The ledger's record of host `name`, if it has seen it (read only: `host` creates it)."""
        rows = self.db.rows(select(schema.hosts).where(schema.hosts.c.name == name))
        return _host(rows[0]) if rows else None

    # -- licenses --------------------------------------------------------------------------

    def license_of_host(self, host_name: str) -> LedgerLicense | None:
        lic = schema.licenses
        rows = self.db.rows(
            select(lic)
            .where((lic.c.host_name == host_name) & (lic.c.state == "held"))
            .order_by(lic.c.updated_at.desc())
        )
        return _license(rows[0]) if rows else None

    def held_elsewhere(self, license_ids: Iterable[str], host_name: str) -> frozenset[str]:
        """Those of `license_ids` that the ledger gives to a host other than `host_name`."""
        lic, ids = schema.licenses, sorted(set(license_ids))
        taken: set[str] = set()
        for start in range(0, len(ids), IDS_PER_QUERY):
            rows = self.db.rows(
                select(lic.c.id).where(
                    lic.c.id.in_(ids[start : start + IDS_PER_QUERY]),
                    lic.c.state == "held",
                    lic.c.host_name.is_not(None),
                    lic.c.host_name != host_name,
                )
            )
            taken.update(row["id"] for row in rows)
        return frozenset(taken)

    def licenses(self, state: str | None = "held") -> list[LedgerLicense]:
        lic = schema.licenses
        statement = select(lic).order_by(lic.c.id)
        if state is not None:
            statement = statement.where(lic.c.state == state)
        return [_license(r) for r in self.db.rows(statement)]

    def record_license(
        self, license_id: str, host_name: str | None, ip: str, edition: str | None, period: str | None, action: str
    ) -> None:
        """Remember that `license_id` serves `host_name` (a host holds one license: others are released)."""
        with self.db.write() as db:
            self._record_license(db, license_id, host_name, ip, edition, period, action)

    def _record_license(
        self,
        db: Connection,
        license_id: str,
        host_name: str | None,
        ip: str,
        edition: str | None,
        period: str | None,
        action: str,
    ) -> None:
        lic, now = schema.licenses, utc_now()
        if host_name:
            db.execute(
                update(lic)
                .where((lic.c.host_name == host_name) & (lic.c.id != license_id) & (lic.c.state == "held"))
                .values(state="gone", updated_at=now)
            )
        statement = self.backend.insert(lic).values(
            id=license_id,
            host_name=host_name,
            ip=ip,
            edition=edition,
            period=period,
            action=action,
            state="held",
            created_at=now,
            updated_at=now,
        )
        db.execute(
            statement.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "host_name": statement.excluded.host_name,
                    "ip": statement.excluded.ip,
                    "edition": func.coalesce(statement.excluded.edition, lic.c.edition),
                    "period": func.coalesce(statement.excluded.period, lic.c.period),
                    "state": "held",
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )
        _event(db, f"license.{action}", host_name, license_id, {"ip": ip, "edition": edition, "period": period})

    def forget_license(self, license_id: str, reason: str) -> None:
        with self.db.write() as db:
            db.execute(
                update(schema.licenses)
                .where(schema.licenses.c.id == license_id)
                .values(state="gone", updated_at=utc_now())
            )
            _event(db, "license.gone", None, license_id, {"reason": reason})

    def claim_license(self, license_id: str, host_name: str, ip: str, edition: str | None, period: str | None) -> bool:
        """Reserve a free license for `host_name`; False if another host already holds it."""
        lic = schema.licenses
        with self.db.write() as db:
            row = (
                db.execute(select(lic.c.host_name, lic.c.state).where(lic.c.id == license_id).with_for_update())
                .mappings()
                .first()
            )
            if row and row["state"] == "held" and row["host_name"] not in (None, host_name):
                return False
            self._record_license(db, license_id, host_name, ip, edition, period, "reused")
            return True

    # -- orders ----------------------------------------------------------------------------

    def order_intent(self, host_name: str) -> OrderIntent | None:
        rows = self.db.rows(select(schema.order_intents).where(schema.order_intents.c.host_name == host_name))
        return _intent(rows[0]) if rows else None

    def begin_order(self, host: LedgerHost, ip: str, edition: str, period: str) -> OrderIntent:
        """Durably record "about to order for this host" before the order leaves."""
        intents = schema.order_intents
        with self.db.write() as db:
            now = utc_now()
            statement = self.backend.insert(intents).values(
                host_name=host.name,
                remoteid=host.remoteid,
                ip=ip,
                edition=edition,
                period=period,
                state="ordering",
                attempts=1,
                license_id=None,
                created_at=now,
                updated_at=now,
            )
            db.execute(
                statement.on_conflict_do_update(
                    index_elements=["host_name"],
                    set_={
                        "remoteid": statement.excluded.remoteid,
                        "ip": statement.excluded.ip,
                        "edition": statement.excluded.edition,
                        "period": statement.excluded.period,
                        "state": "ordering",
                        "attempts": intents.c.attempts + 1,
                        "license_id": None,
                        "updated_at": statement.excluded.updated_at,
                    },
                )
            )
            _event(db, "order.intent", host.name, None, {"ip": ip, "edition": edition, "period": period})
            return _intent(db.execute(select(intents).where(intents.c.host_name == host.name)).mappings().one())

    def finish_order(self, host_name: str, license_id: str, ip: str, edition: str, period: str) -> None:
        """The order's license id is known: record it, close the intent and bill the activation, in one transaction."""
        intents = schema.order_intents
        with self.db.write() as db:
            db.execute(
                update(intents)
                .where(intents.c.host_name == host_name)
                .values(state="done", license_id=license_id, updated_at=utc_now())
            )
            self._record_license(db, license_id, host_name, ip, edition, period, "ordered")
            self.billing.bill(
                db, BillingEvent(utc_today(), "activation", license_id, edition, period), "run", strict=False
            )

    def refuse_order(self, host_name: str, reason: str) -> None:
        """The account refused the order: provably nothing was bought."""
        intents = schema.order_intents
        with self.db.write() as db:
            db.execute(
                update(intents).where(intents.c.host_name == host_name).values(state="refused", updated_at=utc_now())
            )
            _event(db, "order.refused", host_name, None, {"reason": reason})

    # -- per-host lock ---------------------------------------------------------------------

    @contextmanager
    def host_lock(self, host_name: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the host's lock: two processes (on one machine or several) never license one host at once."""
        with self.db.host_lock(host_name, wait):
            yield

    # -- order breakers (agent/licensing/breaker.py) ---------------------------------------

    def breaker(self, account: str) -> BreakerRow | None:
        """The account's breaker as last tripped, if it is."""
        rows = self.db.rows(select(schema.order_breakers).where(schema.order_breakers.c.account == account))
        return BreakerRow(**rows[0]) if rows else None

    def trip_breaker(self, account: str, message: str, now: float) -> None:
        """A refusal for payment: no agent on this ledger orders for `account` until a probe passes."""
        table = schema.order_breakers
        with self.db.write() as db:
            db.execute(
                self.backend.insert(table)
                .values(account=account, tripped_at=now, probe_at=now, message=message)
                .on_conflict_do_update(
                    index_elements=["account"], set_={"tripped_at": now, "probe_at": now, "message": message}
                )
            )
            _event(db, "breaker.tripped", None, None, {"account": account, "message": message})

    def take_probe(self, account: str, seen: BreakerRow, now: float) -> bool:
        """Let one order through to try the account again, unless another agent took this probe first."""
        table = schema.order_breakers
        with self.db.write() as db:
            taken = db.execute(
                update(table).where(table.c.account == account, table.c.probe_at == seen.probe_at).values(probe_at=now)
            ).rowcount
        return taken == 1

    def clear_breaker(self, account: str) -> None:
        """An order went through: the account orders again, for every agent."""
        table = schema.order_breakers
        with self.db.write() as db:
            if db.execute(table.delete().where(table.c.account == account)).rowcount:
                _event(db, "breaker.cleared", None, None, {"account": account})

    # -- order pacing (agent/licensing/breaker.py) -------------------------------------------

    def account_lock(self, account: str, wait: float) -> AbstractContextManager[None]:
        """Held while one order of `account` is sent, by whichever agent on this ledger: orders of one
        account go out one at a time across control nodes, as they do across one run's threads."""
        return self.db.host_lock(f"order gate {account}", wait)

    def order_wait(self, account: str) -> float:
        """Seconds until `account` may send its next order (0: now), by the database's clock."""
        table = schema.order_pacing
        with self.db.read() as db:
            row = db.execute(select(table.c.next_at - self._now()).where(table.c.account == account)).first()
        return max(0.0, row[0]) if row else 0.0

    def order_sent(self, account: str, interval_s: float) -> None:
        """An order of `account` has just been answered: the next one waits `interval_s` from now."""
        table = schema.order_pacing
        with self.db.write() as db:
            next_at = db.execute(select(self._now() + interval_s)).scalar_one()
            db.execute(
                self.backend.insert(table)
                .values(account=account, next_at=next_at)
                .on_conflict_do_update(index_elements=["account"], set_={"next_at": next_at})
            )

    def _now(self) -> ColumnElement[float]:
        # The database's clock: control nodes whose clocks differ keep one pacing.
        if self.backend.name == "postgresql":
            return cast(extract("epoch", func.clock_timestamp()), Float)
        return (func.julianday("now") - 2440587.5) * 86400.0

    # -- activations (outbox) --------------------------------------------------------------

    def queue_activation(
        self, license_id: str, host: LedgerHost, ip: str, edition: str | None, period: str | None
    ) -> None:
        """Record that `host` runs on `license_id`; pending until the account confirms it."""
        with self.db.write() as db:
            inserted = db.execute(
                self.backend.insert(schema.activations)
                .values(
                    license_id=license_id,
                    host_name=host.name,
                    fqdn=host.fqdn or host.name,
                    remoteid=host.remoteid,
                    ip=ip,
                    edition=edition,
                    period=period,
                    state="pending",
                    attempts=0,
                    created_at=utc_now(),
                )
                .on_conflict_do_nothing(index_elements=["license_id", "host_name"])
            ).rowcount
            if inserted:
                _event(db, "activation.queued", host.name, license_id, {"fqdn": host.fqdn})

    def activations(self, host_name: str | None = None, state: str | None = None) -> list[Activation]:
        act = schema.activations
        statement = select(act).order_by(act.c.id)
        if host_name:
            statement = statement.where(act.c.host_name == host_name)
        if state:
            statement = statement.where(act.c.state == state)
        return [_activation(r) for r in self.db.rows(statement)]

    def confirm_activation(self, activation: Activation) -> None:
        act = schema.activations
        with self.db.write() as db:
            db.execute(
                update(act)
                .where(act.c.id == activation.id)
                .values(state="confirmed", confirmed_at=utc_now(), attempts=act.c.attempts + 1, last_error=None)
            )
            _event(db, "activation.confirmed", activation.host_name, activation.license_id, {})

    def activation_failed(self, activation: Activation, error: str) -> None:
        act = schema.activations
        with self.db.write() as db:
            db.execute(
                update(act).where(act.c.id == activation.id).values(attempts=act.c.attempts + 1, last_error=mask(error))
            )

    # -- events ----------------------------------------------------------------------------

    def event(self, kind: str, host_name: str | None, license_id: str | None, **detail: Any) -> None:
        with self.db.write() as db:
            _event(db, kind, host_name, license_id, detail)

    def events(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.rows(select(schema.events).order_by(schema.events.c.id))]


def _event(db: Connection, kind: str, host_name: str | None, license_id: str | None, detail: dict[str, Any]) -> None:
    db.execute(
        schema.events.insert().values(
            at=utc_now(),
            kind=kind,
            host_name=host_name,
            license_id=license_id,
            detail=mask(json.dumps(detail, sort_keys=True)),
        )
    )


def _host(row: RowMapping) -> LedgerHost:
    return LedgerHost(row["name"], row["remoteid"], row["address"], row["fqdn"])


def _license(row: RowMapping) -> LedgerLicense:
    return LedgerLicense(
        row["id"], row["host_name"], row["ip"], row["edition"], row["period"], row["action"], row["state"]
    )


def _intent(row: RowMapping) -> OrderIntent:
    return OrderIntent(
        row["host_name"],
        row["remoteid"],
        row["ip"],
        row["edition"],
        row["period"],
        row["state"],
        row["attempts"],
        row["license_id"],
    )


def _activation(row: RowMapping) -> Activation:
    return Activation(
        row["id"],
        row["license_id"],
        row["host_name"],
        row["fqdn"],
        row["remoteid"],
        row["ip"],
        row["edition"],
        row["period"],
        row["state"],
        row["attempts"],
    )
