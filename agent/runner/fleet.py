"""A shared rollout: one playbook over a fleet, worked on by several control nodes through the team's
PostgreSQL ledger (`ispagent run --rollout NAME`).

Each node is an ordinary run whose host source (`RolloutSource`) claims hosts from the ledger
(agent/ledger/rollouts.py) instead of a list: a host pending, or one whose node stopped renewing its
lease. The steps a host finished under an earlier claim are carried like `--resume` carries them, so
a host whose node died continues on another. Every step's end is written to the ledger only while
the claim is still this node's; when it is not, the node stops acting on that host (`ClaimLost`).

Not to be confused with agent/rollout.py (`Rollout`: the selected hosts grouped by partner account).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.errors import ClaimLost, InputError, LedgerError
from agent.inventory.model import Host
from agent.ledger.rollouts import NodeInfo, RolloutBoard, RolloutStatus, StepRow
from agent.runner.events import Event, HostOutcome, RunListener, StepFinished, StepRecord, StepStarted
from agent.runner.journal import JournalWatch
from agent.runner.plan import RunOptions, RunPlan
from agent.runner.rollout_report import rollout_result
from agent.runner.run import EXIT_UNCONFIRMED, Echo, RunResult, start_run
from agent.secrets import mask
from agent.transport.base import Connector

DEFAULT_LEASE_SECONDS = 60.0
ROLLOUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_rollout_name(name: str) -> str:
    if not ROLLOUT_NAME.fullmatch(name):
        raise InputError(
            f"rollout name {name!r}: use letters, digits, '.', '_' and '-' (at most 100), e.g. panel-2026-05"
        )
    return name


def rollout_ledger(plan: RunPlan) -> str:
    """The one PostgreSQL ledger (its URL) of the plan's hosts, where their rollout is kept."""
    locations = {str(plan.settings[h.name].account.ledger_location(plan.options.state_dir)) for h in plan.hosts}
    if not locations:
        raise InputError(f"{plan.where}: no hosts: a rollout needs at least one")
    if len(locations) > 1:
        raise InputError(
            f"{plan.where}: the hosts use {len(locations)} ledgers; a rollout is kept in one: "
            "give every host the same ledger_url, or roll out each ledger's hosts separately"
        )
    return locations.pop()  # RolloutBoard refuses one that is not PostgreSQL


def new_node() -> tuple[str, str, int]:
    """A node id unique per process: two runs on one machine are two nodes."""
    machine, pid = socket.gethostname(), os.getpid()
    return f"{machine}:{pid}:{secrets.token_hex(2)}", machine, pid


def step_row(record: StepRecord) -> StepRow:
    return StepRow(record.step, record.status, record.changed, record.duration_s, record.message)


def step_record(row: StepRow) -> StepRecord:
    return StepRecord(row.step, row.status, row.changed, row.duration_s, row.message)


class RolloutSource:
    """The hosts of `candidates` that rollout `name` lets this node claim; also the listener that
    keeps each step's end in the ledger (fenced by the claim's token).

    With `wait`, a worker that finds nothing to claim while other nodes hold some of `candidates`
    waits (their leases may run out); without, it ends.
    """

    def __init__(
        self,
        board: RolloutBoard,
        name: str,
        node: NodeInfo,
        candidates: Sequence[Host],
        *,
        wait: bool = False,
        poll_s: float | None = None,
    ) -> None:
        self.board, self.name, self.node, self.wait = board, name, node, wait
        self.candidates = {host.name: host for host in candidates}
        self.poll_s = poll_s if poll_s is not None else min(2.0, node.lease_s / 4)
        self._mutex = threading.Lock()
        self._tokens: dict[str, int] = {}
        self._carried: dict[str, dict[str, StepRecord]] = {}
        self.released: dict[str, HostOutcome] = {}
        self.lost: dict[str, str] = {}  # host -> why this node stopped acting on it
        self.database_lost: str | None = None  # set once: the node claims nothing more
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"rollout {name} heartbeat", daemon=True)

    # -- HostSource --

    def __enter__(self) -> RolloutSource:
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._heartbeat.join()
        if self.database_lost:
            return  # nothing to write to: its claims run out by themselves
        try:  # hosts still held (an interrupted run) go back to pending for the other nodes at once
            self.board.leave(self.name, self.node, "finished")
        except LedgerError as error:
            self._lose_database(error)

    def claim(self) -> Host | None:
        while not self.database_lost:
            try:
                claim = self.board.claim(self.name, self.node, list(self.candidates))
                if claim is None and (
                    not self.wait or not self.board.held_elsewhere(self.name, self.node, list(self.candidates))
                ):
                    return None
            except LedgerError as error:
                self._lose_database(error)
                return None
            if claim is not None:
                with self._mutex:
                    self._tokens[claim.host_name] = claim.token
                    self._carried[claim.host_name] = {row.step: step_record(row) for row in claim.steps}
                return self.candidates[claim.host_name]
            self._stop.wait(self.poll_s)
        return None

    def carried(self, host: Host) -> dict[str, StepRecord]:
        """The steps earlier claims of `host` finished (on this node or one that died): not redone."""
        with self._mutex:
            return dict(self._carried.get(host.name, {}))

    def release(self, host: Host, outcome: HostOutcome) -> None:
        with self._mutex:
            token = self._tokens.pop(host.name, None)
            self.released[host.name] = outcome
        if token is None or host.name in self.lost:
            return
        failed = next((record.step for record in outcome.steps if record.status == "failed"), None)
        try:
            kept = self.board.finish(self.name, host.name, self.node, token, outcome.status, failed, outcome.error)
        except LedgerError as error:
            self._lose_database(error)
            kept = False
        if not kept:
            self._mark_lost(host.name, "its outcome was not recorded: the claim was no longer this node's")

    # -- listener: every step's end in the ledger, while the claim is this node's --

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self._check(event.host, lambda token: self.board.holds(self.name, event.host, self.node, token))
        elif isinstance(event, StepFinished):
            record = event.record
            self._check(
                event.host,
                lambda token: self.board.record_step(self.name, event.host, self.node, token, step_row(record)),
            )

    def _check(self, host: str, still_held: Callable[[int], bool]) -> None:
        with self._mutex:
            token = self._tokens.get(host)
        if token is None:
            return  # not a claimed host (a Python caller's own events): nothing to fence
        if self.database_lost:
            raise self._mark_lost(host, f"the rollout's database is gone ({self.database_lost})")
        try:
            held = still_held(token)
        except LedgerError as error:
            self._lose_database(error)
            raise self._mark_lost(host, f"the rollout's database is gone ({self.database_lost})") from None
        if not held:
            raise self._mark_lost(host, "its lease ran out or another node took it")

    def _mark_lost(self, host: str, why: str) -> ClaimLost:
        with self._mutex:
            self.lost[host] = why
        return ClaimLost(f"{host}: no longer held by this node in rollout {self.name}: {why}; it stopped here")

    def _lose_database(self, error: Exception) -> None:
        with self._mutex:
            if self.database_lost is None:
                self.database_lost = mask(str(error))

    def _beat(self) -> None:
        # A third of the lease: two beats may be lost (a slow query, a short network hiccup) before it runs out.
        while not self._stop.wait(self.node.lease_s / 3):
            if self.database_lost:
                return
            try:
                self.board.heartbeat(self.name, self.node)
            except LedgerError as error:
                self._lose_database(error)
                return


class _Both:
    """The rollout's listener (fencing may stop a host) first, then the caller's display."""

    def __init__(self, first: RunListener, then: RunListener) -> None:
        self.first, self.then = first, then

    def __call__(self, event: Event) -> None:
        self.first(event)
        self.then(event)


@dataclass
class RolloutRun:
    """What one node did in a rollout, and the rollout as the node left it."""

    name: str
    node: str
    started: bool  # this node started the rollout (else it joined)
    hosts_claimable: int  # hosts of the rollout this node could claim (its inventory and --limit)
    outside: list[str] = field(default_factory=list)  # this node's hosts that are not in the rollout
    result: RunResult | None = None  # this node's run: only the hosts it worked on
    status: RolloutStatus | None = None
    lost: dict[str, str] = field(default_factory=dict)
    database_lost: str | None = None
    waited: bool = False
    stalled: str | None = None  # --wait gave up: hosts left and no node alive to take them
    report: RunResult | None = None  # the whole rollout as the ledger had it when this node ended

    @property
    def exit_code(self) -> int:
        if self.result and self.result.status != "finished":
            return self.result.exit_code  # interrupted, aborted: as a single-node run
        if self.database_lost or self.stalled:
            return 1
        own = self.result.exit_code if self.result else 0
        if self.waited and self.status:
            # The rollout's hosts decide, but the rollout's record knows nothing of the partner account:
            # an activation of this node's hosts not yet confirmed still says 4, as it does without --wait.
            rollout = self.status.exit_code
            return EXIT_UNCONFIRMED if rollout == 0 and own == EXIT_UNCONFIRMED else rollout
        return own


def run_rollout(
    plan: RunPlan,
    name: str,
    listener: RunListener,
    echo: Echo | None = None,
    *,
    claimable: Collection[str] | None = None,
    lease_s: float = DEFAULT_LEASE_SECONDS,
    wait: bool = False,
    connector: Connector | None = None,
    journal_watch: JournalWatch | None = None,
    poll_s: float | None = None,
) -> RolloutRun:
    """Start or join rollout `name` over `plan.hosts` and work on the hosts this node can claim.

    The first node's `plan.hosts` make the rollout; a joining node's hosts that are not in it are
    left out (`outside`). `claimable`: the names this node may claim (its --limit), default all.
    With `wait`, return only when the whole rollout is complete (or the database is gone).
    """
    check_rollout_name(name)
    if plan.options.dry_run:
        raise InputError(
            "--rollout with --dry-run: a dry run changes nothing to share; run the dry run without --rollout"
        )
    if lease_s < 1:
        raise InputError(f"--lease {lease_s:g}: a lease needs at least 1 second (the heartbeat renews it every third)")
    board = RolloutBoard(rollout_ledger(plan))
    try:
        node_id, machine, pid = new_node()
        node = NodeInfo(node_id, machine, pid, lease_s)
        # A database failure before any host is claimed is the whole command's failure (one line).
        started = board.start_or_join(
            name, str(plan.playbook.path), plan.playbook.sha256, [host.name for host in plan.hosts], node
        )
        in_rollout = set(board.host_names(name))
    except BaseException:
        board.close()
        raise
    wanted = [h for h in plan.hosts if claimable is None or h.name in claimable]
    mine = [h for h in wanted if h.name in in_rollout]
    outcome = RolloutRun(name, node_id, started, len(mine), [h.name for h in wanted if h.name not in in_rollout])
    try:
        if mine:
            _run_node(outcome, board, node, plan, mine, listener, echo, wait, connector, journal_watch, poll_s)
        if wait and not outcome.database_lost and (outcome.result is None or outcome.result.status == "finished"):
            outcome.waited = True
            poll = poll_s if poll_s is not None else min(2.0, lease_s / 4)
            outcome.status, outcome.stalled = _wait_complete(board, name, poll, lease_s)
        else:
            outcome.status = board.status(name)
        outcome.report = rollout_result(board, name, {host.name: host.address for host in plan.hosts})
    except LedgerError as error:
        outcome.database_lost = mask(str(error))
    finally:
        board.close()
    return outcome


def _run_node(
    outcome: RolloutRun,
    board: RolloutBoard,
    node: NodeInfo,
    plan: RunPlan,
    mine: list[Host],
    listener: RunListener,
    echo: Echo | None,
    wait: bool,
    connector: Connector | None,
    journal_watch: JournalWatch | None,
    poll_s: float | None,
) -> None:
    source = RolloutSource(board, outcome.name, node, mine, wait=wait, poll_s=poll_s)
    node_plan = RunPlan(plan.playbook, tuple(mine), plan.options, plan.ssh, plan.inventory_path)
    result = start_run(
        node_plan,
        _Both(source, listener),
        echo,
        connector=connector,
        source=lambda todo: source,
        journal_watch=journal_watch,
    )
    # Hosts other nodes worked on are theirs to report: this node's result holds the ones it claimed.
    result.hosts = [host for host in result.hosts if host.name in source.released]
    outcome.result, outcome.lost, outcome.database_lost = result, dict(source.lost), source.database_lost


def _wait_complete(
    board: RolloutBoard, name: str, poll_s: float, patience_s: float
) -> tuple[RolloutStatus | None, str | None]:
    """The rollout's status once complete: every host finished, by whichever node.

    Hosts this node may not claim (another site's --limit) are finished only by a node that can: once
    no node has been alive for `patience_s` (this node's lease) while hosts are left, waiting longer
    would be waiting forever, so it ends with why (the second value)."""
    alone_since: float | None = None
    while True:
        status = board.status(name)
        if status is None or status.complete:
            return status, None
        if status.live_nodes():
            alone_since = None
        elif alone_since is None:
            alone_since = time.monotonic()
        elif time.monotonic() - alone_since >= patience_s:
            return status, stalled_reason(status, patience_s)
        time.sleep(poll_s)


def stalled_reason(status: RolloutStatus, patience_s: float) -> str:
    left = [host.name for host in status.hosts if host.state in ("pending", "claimed")]
    shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
    last = max((node.heartbeat_at for node in status.nodes), default=status.started_at)
    return (
        f"{len(left)} host(s) not finished ({shown}) and no node has been alive to take them for "
        f"{patience_s:g}s (last heartbeat {status.now - last:.0f}s ago): start a node whose --limit covers them"
    )


def rollout_options(options: RunOptions, name: str) -> RunOptions:
    """The run options of a node's journal: the rollout's name keeps `--resume` off it."""
    return replace(options, rollout=name)


def rollout_plan(playbook_path: Path, inventory_path: Path, options: RunOptions) -> tuple[RunPlan, tuple[str, ...]]:
    """The plan of `ispagent run PLAYBOOK -i INVENTORY --rollout NAME`: every host of the inventory
    (what a first node starts the rollout with), and the names `--limit` lets this node claim."""
    from agent.inventory.loader import load_inventory
    from agent.runner.playbook import load_playbook

    playbook = load_playbook(playbook_path)
    ssh_config = Path(options.ssh_config) if options.ssh_config else None
    inventory = load_inventory(inventory_path, ssh_config=ssh_config)
    plan = RunPlan(playbook, inventory.hosts, options, inventory.ssh, inventory_path.resolve())
    return plan, tuple(host.name for host in inventory.select(options.limit))
