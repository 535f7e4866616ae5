"""The ledger's tables (SQLAlchemy Core) and its versioned migrations.

`schema_version` holds one row per applied migration. A ledger written by ispagent before
migrations existed (SQLite only) has its version in `meta` and counts as version 1. Migrations only
ever add: a column change is a new migration, never an edit of an old one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)

FAR_FUTURE = "9999-12-31"  # `ended_on` of a billing term still running: one range index serves both

metadata = MetaData()

meta = Table("meta", metadata, Column("key", Text, primary_key=True), Column("value", Text, nullable=False))
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Text, nullable=False),
)
hosts = Table(
    "hosts",
    metadata,
    Column("name", Text, primary_key=True),
    Column("remoteid", Text, nullable=False, unique=True),
    Column("address", Text, nullable=False),
    Column("fqdn", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
licenses = Table(
    "licenses",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host_name", Text),
    Column("ip", Text, nullable=False),
    Column("edition", Text),
    Column("period", Text),
    Column("action", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="held"),  # held | gone
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("licenses_host", "host_name", "state"),
)
order_intents = Table(
    "order_intents",
    metadata,
    Column("host_name", Text, primary_key=True),
    Column("remoteid", Text, nullable=False),
    Column("ip", Text, nullable=False),
    Column("edition", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("state", Text, nullable=False),  # ordering | done | refused
    Column("attempts", Integer, nullable=False),
    Column("license_id", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
host_locks = Table(
    "host_locks",
    metadata,
    Column("host_name", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("machine", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_start", Text, nullable=False),
    Column("expires", Float, nullable=False),
)
activations = Table(
    "activations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("license_id", Text, nullable=False),
    Column("host_name", Text, nullable=False),
    Column("fqdn", Text, nullable=False),
    Column("remoteid", Text, nullable=False),
    Column("ip", Text, nullable=False),
    Column("edition", Text),
    Column("period", Text),
    Column("state", Text, nullable=False),  # pending | confirmed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", Text, nullable=False),
    Column("confirmed_at", Text),
    UniqueConstraint("license_id", "host_name"),
    sqlite_autoincrement=True,
)
# Version 6: a host's activations (every run's drift and report steps ask for its pending ones) without
# reading every host's: a partner's ledger holds thousands.
activations_host = Index("activations_host", activations.c.host_name, activations.c.state)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("host_name", Text),
    Column("license_id", Text),
    Column("detail", Text, nullable=False),
    sqlite_autoincrement=True,
)

# -- version 2: what the partner program bills (program §5, §10) ------------------------

billing_events = Table(
    "billing_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("on_date", Text, nullable=False),  # YYYY-MM-DD
    Column("kind", Text, nullable=False),  # activation | renewal | deactivation | payment
    Column("license_id", Text, nullable=False),  # '' for a payment
    Column("edition", Text),
    Column("period", Text),
    Column("price", Text),  # list price in EUR as a decimal string; NULL: the program's list price
    Column("source", Text, nullable=False),  # run | import | cli
    Column("created_at", Text, nullable=False),
    Index("billing_events_date", "on_date", "kind"),
    Index("billing_events_license", "license_id", "kind", "on_date"),
    sqlite_autoincrement=True,
)
# One row per stretch of time a license is billed: opened by its activation (or the first renewal
# seen of a license whose activation predates the ledger), closed by its deactivation. Implied
# renewals are read from here without walking the event history.
billing_terms = Table(
    "billing_terms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("license_id", Text, nullable=False),
    Column("edition", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("started_on", Text, nullable=False),
    Column("ended_on", Text, nullable=False, server_default=FAR_FUTURE),
    Index("billing_terms_open", "ended_on", "started_on", "period", "edition", "license_id"),  # covers implied renewals
    Index("billing_terms_license", "license_id", "ended_on"),
    sqlite_autoincrement=True,
)

# -- version 3: the order breaker of each partner account, shared by every agent on the ledger -------

order_breakers = Table(
    "order_breakers",
    metadata,
    Column("account", Text, primary_key=True),  # PartnerSettings.account: the API URL and user
    Column("tripped_at", Float, nullable=False),  # epoch seconds of the last refusal for payment
    Column("probe_at", Float, nullable=False),  # epoch seconds of the last order let through to try again
    Column("message", Text, nullable=False),
)

# -- version 4: rollouts shared by several control nodes (agent/runner/fleet.py) ---------------------
# Times are the database's clock (epoch seconds), never a node's: leases compare across machines.

rollouts = Table(
    "rollouts",
    metadata,
    Column("name", Text, primary_key=True),
    Column("playbook", Text, nullable=False),
    Column("playbook_sha256", Text, nullable=False),
    Column("started_by", Text, nullable=False),
    Column("started_at", Float, nullable=False),
)
rollout_hosts = Table(
    "rollout_hosts",
    metadata,
    Column("rollout", Text, primary_key=True),
    Column("host_name", Text, primary_key=True),
    Column("state", Text, nullable=False),  # pending | claimed | ok | changed | failed | unreachable
    Column("node", Text),  # who holds the claim, or who finished the host
    Column("token", Integer, nullable=False, server_default="0"),  # +1 per claim: fences a node that lost it
    Column("lease_until", Float),
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("failed_step", Text),
    Column("error", Text),
    Column("updated_at", Float, nullable=False),
    Index("rollout_hosts_state", "rollout", "state"),
)
rollout_steps = Table(
    "rollout_steps",
    metadata,
    Column("rollout", Text, primary_key=True),
    Column("host_name", Text, primary_key=True),
    Column("step", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("node", Text, nullable=False),
    Column("token", Integer, nullable=False),
    Column("finished_at", Float, nullable=False),
)
rollout_nodes = Table(
    "rollout_nodes",
    metadata,
    Column("rollout", Text, primary_key=True),
    Column("node", Text, primary_key=True),
    Column("machine", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("lease_s", Float, nullable=False),
    Column("state", Text, nullable=False),  # running | finished | lost (the database went away)
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# -- version 5: the pacing of each partner account's orders, shared by every agent on the ledger ----

order_pacing = Table(
    "order_pacing",
    metadata,
    Column("account", Text, primary_key=True),  # PartnerSettings.account
    Column("next_at", Float, nullable=False),  # the database's clock (epoch seconds): no order before
)


def _v1(db: Connection) -> None:
    for table in (meta, hosts, licenses, order_intents, host_locks, activations, events):
        table.create(db, checkfirst=True)


def _v2(db: Connection) -> None:
    billing_events.create(db, checkfirst=True)
    billing_terms.create(db, checkfirst=True)


def _v3(db: Connection) -> None:
    order_breakers.create(db, checkfirst=True)


def _v4(db: Connection) -> None:
    for table in (rollouts, rollout_hosts, rollout_steps, rollout_nodes):
        table.create(db, checkfirst=True)


def _v5(db: Connection) -> None:
    order_pacing.create(db, checkfirst=True)


def _v6(db: Connection) -> None:
    activations_host.create(db, checkfirst=True)  # a new ledger's v1 made it with the table


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
    (6, _v6),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def applied_version(db: Connection) -> int:
    """The ledger's schema version (0: empty database)."""
    names = set(inspect(db).get_table_names())
    if "schema_version" in names:
        return db.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).scalar() or 0
    if "meta" in names:  # a ledger from before migrations: its tables are version 1
        row = db.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        return int(row or 1)
    return 0


def migrate(db: Connection, now: str) -> int:
    """Apply every migration newer than the ledger, in order, inside the caller's transaction."""
    version = applied_version(db)
    if version > SCHEMA_VERSION:
        from agent.errors import LedgerError

        raise LedgerError(
            f"the ledger has schema version {version}, this ispagent knows up to {SCHEMA_VERSION}: upgrade ispagent"
        )
    schema_version.create(db, checkfirst=True)
    if version and not db.execute(select(schema_version.c.version)).first():
        db.execute(schema_version.insert().values(version=version, applied_at=now))
    for number, step in MIGRATIONS:
        if number > version:
            step(db)
            db.execute(schema_version.insert().values(version=number, applied_at=now))
    return SCHEMA_VERSION
