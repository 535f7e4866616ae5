"""Rollouts shared by several control nodes: which node holds which host, until when, and what each
host's steps gave, in the team's PostgreSQL ledger.

A host is claimed with `SELECT ... FOR UPDATE SKIP LOCKED`: two nodes asking at once take different
hosts and neither waits for the other. Each claim bumps the host's `token`; every later write of the
node for that host (a step's end, the outcome) runs only while the row still names this node, this
token and a lease that has not run out, under a row lock, so a node that lost a host (its lease ran
out, another node took it) writes nothing more for it. Time is the database's clock throughout, so
nodes with skewed clocks agree on when a lease ends.

A job-queue library (procrastinate, pgqueuer) was not used: they run functions as jobs with their own
workers and retry rules, while a rollout's unit is a host that the existing runner works on, whose
progress is step records read back on a new claim. The queue is four small tables and one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, and_, cast, extract, func, or_, select, update

from agent.errors import InputError
from agent.ledger import schema
from agent.ledger.database import LedgerDatabase

FINISHED = ("ok", "changed", "failed", "unreachable")
FAILED = ("failed", "unreachable")

hosts_t, steps_t, nodes_t, rollouts_t = (
    schema.rollout_hosts,
    schema.rollout_steps,
    schema.rollout_nodes,
    schema.rollouts,
)


def db_now() -> ColumnElement[float]:
    """The database's wall clock in epoch seconds (clock_timestamp: not frozen at the transaction's start)."""
    return cast(extract("epoch", func.clock_timestamp()), Float)


@dataclass(frozen=True)
class NodeInfo:
    """One control node's process in a rollout."""

    node: str  # unique per process: machine, pid and a random suffix
    machine: str
    pid: int
    lease_s: float


@dataclass(frozen=True)
class Claim:
    host_name: str
    token: int
    steps: tuple[StepRow, ...]  # what earlier claims of the host recorded: carried like --resume


@dataclass(frozen=True)
class StepRow:
    step: str
    status: str
    changed: bool
    duration_s: float
    message: str


@dataclass(frozen=True)
class RolloutHost:
    name: str
    state: str  # pending | claimed | ok | changed | failed | unreachable
    node: str | None
    lease_until: float | None
    claims: int
    failed_step: str | None
    error: str | None

    def to_json(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {"host": self.name, "state": self.state, "node": self.node, "claims": self.claims}
        if self.state == "claimed":
            data["lease_until"] = self.lease_until
            data["lease_expired"] = bool(self.lease_until is not None and self.lease_until <= now)
        if self.state in FAILED:
            data.update(failed_step=self.failed_step, error=self.error)
        return data


@dataclass(frozen=True)
class RolloutNode:
    node: str
    machine: str
    pid: int
    state: str
    lease_s: float
    started_at: float
    heartbeat_at: float
    counts: dict[str, int] = field(default_factory=dict)  # host state -> hosts this node holds or finished

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "node": self.node,
            "machine": self.machine,
            "pid": self.pid,
            "state": self.state,
            "lease_s": self.lease_s,
            "heartbeat_at": self.heartbeat_at,
            "heartbeat_age_s": round(now - self.heartbeat_at, 1),
            "hosts": dict(self.counts),
        }


@dataclass(frozen=True)
class RolloutStatus:
    name: str
    playbook: str
    playbook_sha256: str
    started_by: str
    started_at: float
    now: float  # the database's clock when this was read
    hosts: tuple[RolloutHost, ...]
    nodes: tuple[RolloutNode, ...]

    def count(self, *states: str) -> int:
        return sum(1 for host in self.hosts if host.state in states)

    @property
    def complete(self) -> bool:
        return self.count(*FINISHED) == len(self.hosts)

    @property
    def exit_code(self) -> int:
        """As `ispagent run`'s: 0 every host ok or changed, 1 some failed or unreachable or not done."""
        return 0 if self.count("ok", "changed") == len(self.hosts) else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "rollout": self.name,
            "playbook": self.playbook,
            "playbook_sha256": self.playbook_sha256,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "now": self.now,
            "complete": self.complete,
            "exit_code": self.exit_code if self.complete else None,
            "counts": {state: self.count(state) for state in ("pending", "claimed", *FINISHED)},
            "hosts": [host.to_json(self.now) for host in self.hosts],
            "nodes": [node.to_json(self.now) for node in self.nodes],
        }


class RolloutBoard:
    """The rollouts of one PostgreSQL ledger. Every method is one short transaction."""

    def __init__(self, location: str | Path) -> None:
        # Checked before opening: opening a SQLite path would create a ledger file there.
        if isinstance(location, Path) or not str(location).startswith("postgresql"):
            shown = (
                location
                if isinstance(location, Path) or "://" not in str(location)
                else str(location).split("://")[0] + "://..."
            )
            raise InputError(
                f"ledger {shown}: rollouts shared by several control nodes are kept in a PostgreSQL ledger: "
                "set ledger_url = postgresql+psycopg://USER:<password>@HOST/DATABASE in the inventory vars"
            )
        self.db = LedgerDatabase(location)
        self.shown = self.db.shown

    def close(self) -> None:
        self.db.close()

    def start_or_join(self, name: str, playbook: str, sha256: str, host_names: Sequence[str], node: NodeInfo) -> bool:
        """Start rollout `name` over `host_names`, or join it if it exists; True if this call started it.

        Joining with another playbook is refused: one rollout runs one playbook on every host.
        """
        with self.db.write() as db:
            now = db.execute(select(db_now())).scalar_one()
            started = (
                db.execute(
                    self.db.backend.insert(rollouts_t)
                    .values(
                        name=name,
                        playbook=playbook,
                        playbook_sha256=sha256,
                        started_by=node.node,
                        started_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(rollouts_t.c.name)
                ).first()
                is not None
            )
            row = db.execute(select(rollouts_t).where(rollouts_t.c.name == name).with_for_update()).mappings().one()
            if row["playbook_sha256"] != sha256:
                raise InputError(
                    f"rollout {name} runs {row['playbook']} (sha256 {row['playbook_sha256'][:12]}), not {playbook} "
                    f"(sha256 {sha256[:12]}): join it with the same playbook, or start a new rollout under another name"
                )
            if started:
                db.execute(
                    hosts_t.insert(),
                    [
                        {"rollout": name, "host_name": host, "state": "pending", "updated_at": now}
                        for host in host_names
                    ],
                )
            db.execute(
                self.db.backend.insert(nodes_t)
                .values(
                    rollout=name,
                    node=node.node,
                    machine=node.machine,
                    pid=node.pid,
                    lease_s=node.lease_s,
                    state="running",
                    started_at=now,
                    heartbeat_at=now,
                )
                .on_conflict_do_nothing()
            )
        return started

    def host_names(self, name: str) -> list[str]:
        return [
            row["host_name"]
            for row in self.db.rows(
                select(hosts_t.c.host_name).where(hosts_t.c.rollout == name).order_by(hosts_t.c.host_name)
            )
        ]

    def claim(self, name: str, node: NodeInfo, candidates: Sequence[str]) -> Claim | None:
        """One of `candidates` that is pending or whose lease ran out, now held by `node` for its lease."""
        claimable = and_(
            hosts_t.c.rollout == name,
            hosts_t.c.host_name.in_(list(candidates)),
            or_(hosts_t.c.state == "pending", and_(hosts_t.c.state == "claimed", hosts_t.c.lease_until <= db_now())),
        )
        with self.db.write() as db:
            row = db.execute(
                select(hosts_t.c.host_name, hosts_t.c.token)
                .where(claimable)
                .order_by(hosts_t.c.host_name)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            token = row.token + 1
            db.execute(
                update(hosts_t)
                .where(hosts_t.c.rollout == name, hosts_t.c.host_name == row.host_name)
                .values(
                    state="claimed",
                    node=node.node,
                    token=token,
                    lease_until=db_now() + node.lease_s,
                    claims=hosts_t.c.claims + 1,
                    updated_at=db_now(),
                )
            )
            steps = db.execute(
                select(steps_t)
                .where(steps_t.c.rollout == name, steps_t.c.host_name == row.host_name)
                .order_by(steps_t.c.finished_at)
            ).mappings()
            carried = tuple(
                StepRow(s["step"], s["status"], bool(s["changed"]), s["duration_s"], s["message"]) for s in steps
            )
        return Claim(row.host_name, token, carried)

    def held_elsewhere(self, name: str, node: NodeInfo, candidates: Sequence[str]) -> int:
        """How many of `candidates` other nodes hold now: hosts that may still come back to be claimed."""
        held: int = self.db.scalar(
            select(func.count())
            .select_from(hosts_t)
            .where(
                hosts_t.c.rollout == name,
                hosts_t.c.host_name.in_(list(candidates)),
                hosts_t.c.state == "claimed",
                hosts_t.c.node != node.node,
            )
        )
        return held

    def heartbeat(self, name: str, node: NodeInfo) -> set[str]:
        """Renew `node`'s heartbeat and the leases it still holds; the hosts it holds.

        A lease that already ran out is not renewed: another node may be taking that host now.
        """
        with self.db.write() as db:
            db.execute(
                update(nodes_t)
                .where(nodes_t.c.rollout == name, nodes_t.c.node == node.node)
                .values(heartbeat_at=db_now())
            )
            rows = db.execute(
                update(hosts_t)
                .where(self._holds(name, node))
                .values(lease_until=db_now() + node.lease_s)
                .returning(hosts_t.c.host_name)
            )
            return {row.host_name for row in rows}

    def holds(self, name: str, host: str, node: NodeInfo, token: int) -> bool:
        """Whether `node` still holds `host` under claim `token` with a live lease."""
        with self.db.read() as db:
            return (
                db.execute(select(hosts_t.c.host_name).where(self._holds(name, node, host, token))).first() is not None
            )

    def record_step(self, name: str, host: str, node: NodeInfo, token: int, step: StepRow) -> bool:
        """Keep one step's end, if `node` still holds the host under `token`; False (nothing written) if not."""
        values = {
            "status": step.status,
            "changed": int(step.changed),
            "duration_s": step.duration_s,
            "message": step.message,
            "node": node.node,
            "token": token,
            "finished_at": db_now(),
        }
        with self.db.write() as db:
            if not self._lock_held(db, name, host, node, token):
                return False
            db.execute(
                self.db.backend.insert(steps_t)
                .values(rollout=name, host_name=host, step=step.step, **values)
                .on_conflict_do_update(index_elements=["rollout", "host_name", "step"], set_=values)
            )
        return True

    def finish(
        self,
        name: str,
        host: str,
        node: NodeInfo,
        token: int,
        state: str,
        failed_step: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the host's outcome, if `node` still holds it under `token`; False (nothing written) if not."""
        with self.db.write() as db:
            if not self._lock_held(db, name, host, node, token):
                return False
            db.execute(
                update(hosts_t)
                .where(hosts_t.c.rollout == name, hosts_t.c.host_name == host)
                .values(state=state, lease_until=None, failed_step=failed_step, error=error, updated_at=db_now())
            )
        return True

    def leave(self, name: str, node: NodeInfo, state: str = "finished") -> None:
        """`node` stops: the hosts it still holds go back to pending (another node takes them at once)."""
        with self.db.write() as db:
            db.execute(
                update(hosts_t)
                .where(self._holds(name, node))
                .values(state="pending", lease_until=None, updated_at=db_now())
            )
            db.execute(
                update(nodes_t)
                .where(nodes_t.c.rollout == name, nodes_t.c.node == node.node)
                .values(state=state, heartbeat_at=db_now())
            )

    def status(self, name: str) -> RolloutStatus | None:
        with self.db.read() as db:
            head = db.execute(select(rollouts_t).where(rollouts_t.c.name == name)).mappings().first()
            if head is None:
                return None
            now = db.execute(select(db_now())).scalar_one()
            hosts = [
                RolloutHost(
                    r["host_name"], r["state"], r["node"], r["lease_until"], r["claims"], r["failed_step"], r["error"]
                )
                for r in db.execute(
                    select(hosts_t).where(hosts_t.c.rollout == name).order_by(hosts_t.c.host_name)
                ).mappings()
            ]
            node_rows = list(
                db.execute(
                    select(nodes_t).where(nodes_t.c.rollout == name).order_by(nodes_t.c.started_at, nodes_t.c.node)
                ).mappings()
            )
        counts: dict[str, dict[str, int]] = {}
        for host in hosts:
            if host.node:
                by_state = counts.setdefault(host.node, {})
                by_state[host.state] = by_state.get(host.state, 0) + 1
        nodes = [
            RolloutNode(
                r["node"],
                r["machine"],
                r["pid"],
                r["state"],
                r["lease_s"],
                r["started_at"],
                r["heartbeat_at"],
                counts.get(r["node"], {}),
            )
            for r in node_rows
        ]
        return RolloutStatus(
            name,
            head["playbook"],
            head["playbook_sha256"],
            head["started_by"],
            head["started_at"],
            now,
            tuple(hosts),
            tuple(nodes),
        )

    def names(self) -> list[str]:
        return [row["name"] for row in self.db.rows(select(rollouts_t.c.name).order_by(rollouts_t.c.started_at))]

    @staticmethod
    def _holds(name: str, node: NodeInfo, host: str | None = None, token: int | None = None) -> ColumnElement[bool]:
        conditions = [
            hosts_t.c.rollout == name,
            hosts_t.c.node == node.node,
            hosts_t.c.state == "claimed",
            hosts_t.c.lease_until > db_now(),
        ]
        if host is not None:
            conditions += [hosts_t.c.host_name == host, hosts_t.c.token == token]
        return and_(*conditions)

    def _lock_held(self, db: Connection, name: str, host: str, node: NodeInfo, token: int) -> bool:
        # FOR UPDATE: a claimer's SKIP LOCKED passes over the row while this write checks and writes,
        # so a host cannot change hands between the check and the write.
        return (
            db.execute(
                select(hosts_t.c.host_name).where(self._holds(name, node, host, token)).with_for_update()
            ).first()
            is not None
        )
