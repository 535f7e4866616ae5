"""Running a plan over many hosts: parallel, in rolling batches, journaled, resumable.

The runner is given a RunPlan (plan.py) and plugs three things together: a host source
(hostsource.py; a static list by default), a connector (agent/transport/base.py; SSH by
default) and listeners (the journal, then the caller's). One host's work is `run_host` (hostrun.py).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.clock import UTC
from agent.errors import ClaimLost, HostUnreachable, InputError, RunAborted, StateDirError
from agent.inventory.model import Host
from agent.runner.batches import failed_percent, parse_batch_size, threshold_exceeded
from agent.runner.context import HostContext
from agent.runner.drift import Audit, audit_host, audit_steps, interrupted_changes, unconfirmed_activations
from agent.runner.events import (
    BatchFinished,
    Event,
    HostFinished,
    HostOutcome,
    HostStarted,
    RunFinished,
    RunListener,
    RunStarted,
    StepRecord,
)
from agent.runner.hostrun import outcome_of, run_host, run_step
from agent.runner.hostsource import BatchOf, HostSource, StaticHostSource
from agent.runner.journal import InventoryLock, Journal, JournalWatch, RunRecord, new_run_id, utc_now
from agent.runner.plan import RunOptions, RunPlan
from agent.runner.pool import run_pool
from agent.runner.services import RunServices
from agent.secrets import mask
from agent.transport.base import Connector
from agent.transport.dialing import MAX_HANDSHAKES, DialedSockets
from agent.transport.hostlog import HostLog

if TYPE_CHECKING:
    from agent.runner.standing import AccountStanding

__all__ = ["EXIT_UNCONFIRMED", "FAILED_STATUSES", "RunOptions", "RunPlan", "RunResult", "resume_run", "start_run"]

FAILED_STATUSES = ("failed", "unreachable")
DONE_STATUSES = ("ok", "changed")
# Every host ok, but the partner account has not confirmed some activations yet (the next run's
# report step retries them): an unattended job must not read this as plain success.
EXIT_UNCONFIRMED = 4


@dataclass
class RunResult:
    run_id: str
    playbook: str
    inventory: str
    started_at: str
    dry_run: bool
    hosts: list[HostOutcome] = field(default_factory=list)
    finished_at: str | None = None
    status: str = "finished"  # finished | aborted | interrupted
    reason: str | None = None
    standing: AccountStanding | None = None  # ledger and account after the run (playbooks that use the account)

    def count(self, status: str) -> int:
        return sum(1 for host in self.hosts if host.status == status)

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 130
        if self.status == "aborted":
            return RunAborted.exit_code
        if any(h.status in (*FAILED_STATUSES, "skipped") for h in self.hosts):
            return 1  # a finished run leaves no host skipped: one that was is as unfinished as a failed one
        return EXIT_UNCONFIRMED if self.standing and self.standing.unconfirmed else 0

    def drifted(self) -> list[HostOutcome]:
        """Hosts a drift-only run found drifted (and so ran the whole playbook on)."""
        return [host for host in self.hosts if (host.report.get("drift") or {}).get("drifted")]


Echo = Callable[[str, str], None]  # (host name, masked log line) for -v
SourceFactory = Callable[[list[Host]], HostSource]  # the hosts still to run -> where workers claim them


@dataclass
class _Run:
    """Everything one execution of a run shares between its host threads; set before any starts."""

    record: RunRecord
    plan: RunPlan
    journal: Journal
    listener: RunListener  # the journal first (durable), then the caller's listener (display)
    echo: Echo | None
    connector: Connector
    services: RunServices = field(default_factory=RunServices)

    @property
    def options(self) -> RunOptions:
        return self.plan.options


def start_run(
    plan: RunPlan,
    listener: RunListener,
    echo: Echo | None = None,
    run_id: str | None = None,
    *,
    connector: Connector | None = None,
    source: SourceFactory | None = None,
    journal_watch: JournalWatch | None = None,
) -> RunResult:
    """Run `plan` as a new journaled run.

    `connector` opens the hosts' connections (SSH with the plan's settings by default); `source`
    makes the host source the workers claim from (the plan's hosts under a lock by default);
    `journal_watch` is told when chosen events are durable.
    """
    record = RunRecord(
        run_id=run_id or new_run_id(),
        playbook=str(plan.playbook.path),
        playbook_sha256=plan.playbook.sha256,
        inventory=str(plan.inventory_path or ""),
        hosts=[h.name for h in plan.hosts],
        options=plan.options.to_json(),
        started_at=utc_now(),
        pid=os.getpid(),
    )
    journal = Journal(plan.options.state_dir, record.run_id, journal_watch)
    return _execute(plan, record, journal, listener, echo, connector, source, resumed=False)


def resume_run(
    run_id: str,
    state_dir: Path,
    listener: RunListener,
    echo: Echo | None = None,
    plan: RunPlan | None = None,
    *,
    connector: Connector | None = None,
    journal_watch: JournalWatch | None = None,
) -> RunResult:
    """Finish run `run_id`: hosts that ended ok are kept, finished steps are not redone.

    A run started from files is read again from them; one started from objects needs its `plan`.
    """
    journal = Journal(state_dir, run_id, journal_watch)
    record = journal.read_record()
    if record.options.get("dry_run"):
        raise InputError(f"run {run_id} was a dry run: there is nothing to finish; start a real run")
    if record.options.get("rollout"):
        # Its hosts are shared with other nodes: resuming alone would run them outside the rollout.
        raise InputError(
            f"run {run_id} was a node of rollout {record.options['rollout']}: join the rollout again "
            f"with ispagent run PLAYBOOK -i INVENTORY --rollout {record.options['rollout']}"
        )
    plan = plan or _plan_of_record(record, state_dir)
    if plan.playbook.sha256 != record.playbook_sha256:
        raise InputError(
            f"{record.playbook}: the playbook changed (or vanished) since run {run_id} started; "
            "resuming would mix two playbooks: start a new run"
        )
    known = {h.name: h for h in plan.hosts}
    missing = [name for name in record.hosts if name not in known]
    if missing:
        raise InputError(f"{plan.where}: host(s) {', '.join(missing)} of run {run_id} are no longer in the inventory")
    record.resumed_at.append(utc_now())
    record.status, record.finished_at, record.reason, record.pid = "running", None, None, os.getpid()
    hosts = tuple(known[name] for name in record.hosts)
    plan = RunPlan(plan.playbook, hosts, plan.options, plan.ssh, plan.inventory_path)
    return _execute(plan, record, journal, listener, echo, connector, None, resumed=True)


def _plan_of_record(record: RunRecord, state_dir: Path) -> RunPlan:
    if not record.inventory:
        raise InputError(
            f"run {record.run_id} was started from Python objects, not files: "
            "resume it from Python with resume_run(..., plan=the same RunPlan)"
        )
    playbook_path = Path(record.playbook)
    if not playbook_path.exists():
        raise InputError(
            f"{playbook_path}: the playbook changed (or vanished) since run {record.run_id} started; "
            "resuming would mix two playbooks: start a new run"
        )
    # Every host of the inventory: resume_run keeps those of the run (the record holds its own --limit).
    options = RunOptions(**{**record.options, "state_dir": state_dir, "limit": None})
    return RunPlan.from_files(playbook_path, Path(record.inventory), options)


def _execute(
    plan: RunPlan,
    record: RunRecord,
    journal: Journal,
    display: RunListener,
    echo: Echo | None,
    connector: Connector | None,
    source: SourceFactory | None,
    *,
    resumed: bool,
) -> RunResult:
    result = RunResult(
        run_id=record.run_id,
        playbook=record.playbook,
        inventory=record.inventory,
        started_at=record.started_at,
        dry_run=plan.options.dry_run,
    )
    with contextlib.ExitStack() as cleanup:
        host_status, finished_steps = journal.finished_work() if resumed else ({}, {})
        done = {
            host.name: _outcome_from_journal(host, host_status[host.name], finished_steps[host.name])
            for host in plan.hosts
            if (host_status.get(host.name) or {}).get("status") in DONE_STATUSES
        }
        todo = [host for host in plan.hosts if host.name not in done]
        hosts = cleanup.enter_context((source or _static_source(plan, record.run_id))(todo))
        services = RunServices()
        cleanup.callback(services.close)
        if _uses_account(plan):
            _read_account_credentials(plan, services)
        if connector is None:
            # The first hosts are contacted here, after every check that refuses a run before any
            # host. A source of this run's own hands out `todo` in order; a shared one (a rollout)
            # may not.
            connector = _ssh_connector(plan, _first_hosts(plan, todo) if source is None else [])
        cleanup.callback(connector.close)
        run = _Run(record, plan, journal, _Listeners(journal, display), echo, connector, services)
        journal.write_record(record)
        journal.open_events()
        cleanup.callback(journal.close)
        _execute_hosts(run, hosts, len(todo), done, finished_steps, result, resumed)
    return result


def _static_source(plan: RunPlan, run_id: str) -> SourceFactory:
    def make(todo: list[Host]) -> HostSource:
        # A dry run changes nothing: it may overlap a real one.
        if plan.options.dry_run:
            return StaticHostSource(todo)
        return StaticHostSource(todo, InventoryLock(plan.options.state_dir, plan.lock_key(), plan.where, run_id))

    return make


def _ssh_connector(plan: RunPlan, first: list[Host]) -> Connector:
    """The run's SSH connector, with `first`'s TCP connections dialed before paramiko is imported
    (agent/transport/dialing.py: the hosts' sshds start on them while this process goes on)."""
    dialed = DialedSockets(host.endpoint for host in first)
    try:
        from agent.transport.ssh import SshConnector

        connector = SshConnector(plan.ssh, dialed=dialed)
        connector.load_identity_files(plan.hosts)  # a bad key refuses the run before any handshake
        return connector
    except BaseException:  # an unreadable known_hosts or key, say: no socket is left open behind the error
        dialed.close()
        raise


def _first_hosts(plan: RunPlan, todo: list[Host]) -> list[Host]:
    """The hosts whose handshakes begin as soon as the workers start: the first batch's first `forks`."""
    size = parse_batch_size(plan.options.batch_size, len(todo))
    return todo[: min(size, plan.options.forks, MAX_HANDSHAKES)]


def _uses_account(plan: RunPlan) -> bool:
    return any(planned.type.uses_account for planned in plan.playbook.steps)


def _read_standing(run: _Run, result: RunResult) -> None:
    if run.options.dry_run or not _uses_account(run.plan) or result.status == "interrupted":
        return
    # Imported here: a run whose playbook does not use the account never reads it (4 ms at start-up).
    from agent.runner.standing import Order, read_standing

    settings = [run.plan.settings[host.name].account for host in run.plan.hosts]
    orders = [
        Order(host.name, str(lic.get("id")), lic["edition"], lic["period"])
        for host in result.hosts
        if (lic := host.report.get("license") or {}).get("action") == "ordered"
    ]
    result.standing = read_standing(
        run.services, settings, [h.name for h in run.plan.hosts], run.options.state_dir, UTC.today(), orders
    )


def _read_account_credentials(plan: RunPlan, services: RunServices) -> None:
    """The partner credentials of every host, read once, before any host is contacted."""
    for host in plan.hosts:
        try:
            services.partner_settings(plan.settings[host.name].account.partner)
        except InputError as error:
            raise type(error)(f"{plan.where}: hosts.{host.name}: {error}") from None


def _execute_hosts(
    run: _Run,
    source: HostSource,
    todo: int,
    outcomes: dict[str, HostOutcome],
    carried: dict[str, dict[str, StepRecord]],
    result: RunResult,
    resumed: bool,
) -> None:
    listener = run.listener
    try:
        listener(RunStarted(run.record.run_id, len(run.plan.hosts), resumed))
        _run_batches(run, source, todo, carried, outcomes, result)
        if run.journal.broken:
            raise run.journal.broken
        result.hosts = [outcomes.get(h.name) or _not_run(h, result.reason) for h in run.plan.hosts]
        _read_standing(run, result)
    except KeyboardInterrupt:
        result.status, result.reason = "interrupted", "interrupted by signal"
    finally:
        result.hosts = [outcomes.get(h.name) or _not_run(h, result.reason) for h in run.plan.hosts]
        if result.standing is not None:
            from agent.runner.standing import priced

            result.hosts = priced(result.hosts, result.standing)
        result.finished_at = utc_now()
        listener(RunFinished(result.status, result.reason))
        record = run.record
        record.status, record.finished_at, record.reason = result.status, result.finished_at, result.reason
        record.summary = {status: result.count(status) for status in ("ok", "changed", *FAILED_STATUSES, "skipped")}
        # What the reports need beyond the events, so `runs show` renders the run as `--report-*` did.
        record.addresses = {host.name: host.address for host in run.plan.hosts}
        record.standing = result.standing.to_report() if result.standing else None
        run.journal.write_record(record)


class _Listeners:
    """Every event to each listener in turn: the journal first (durable), then the display."""

    def __init__(self, *listeners: RunListener) -> None:
        self.listeners = listeners

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)


def _run_batches(
    run: _Run,
    source: HostSource,
    todo: int,
    carried: dict[str, dict[str, StepRecord]],
    outcomes: dict[str, HostOutcome],
    result: RunResult,
) -> None:
    size = parse_batch_size(run.options.batch_size, todo)
    index = 0

    def work(host: Host) -> None:
        outcome = _run_host_guarded(run, host, carried.get(host.name) or _carried_by(source, host))
        outcomes[host.name] = outcome
        source.release(host, outcome)

    while True:
        batch = BatchOf(source, size)
        run_pool(batch.claim, run.options.forks, work, expected=size)
        if not batch.claimed:
            return
        index += 1
        failures = sum(1 for o in outcomes.values() if o.status in FAILED_STATUSES)
        percent = failed_percent(failures, len(outcomes))
        run.listener(BatchFinished(index, batch.claimed, round(percent, 1)))
        if threshold_exceeded(failures, len(outcomes), run.options.max_fail_percent):
            result.status = "aborted"
            result.reason = (
                f"{failures} of {len(outcomes)} hosts failed ({percent:.0f}%), more than "
                f"--max-fail-percent {run.options.max_fail_percent:g}; later batches not started"
            )
            return


def _carried_by(source: HostSource, host: Host) -> dict[str, StepRecord]:
    """Steps the source says `host` finished elsewhere (a shared rollout's other node): carried like --resume."""
    carried = getattr(source, "carried", None)
    return carried(host) if carried else {}


def _run_host(run: _Run, host: Host, carried: dict[str, StepRecord]) -> HostOutcome:
    run.listener(HostStarted(host.name))
    run_echo = run.echo
    echo = (lambda line: run_echo(host.name, line)) if run_echo else None
    log = HostLog(run.journal.host_log_path(host.name), echo)
    try:
        connection = run.connector.connect(host, log)
    except HostUnreachable as error:
        log.write("!", f"unreachable: {error}")
        log.close()
        return _finish(run, HostOutcome(host.name, host.address, "unreachable", (), mask(str(error))))
    context = HostContext(
        host=host,
        connection=connection,
        dry_run=run.options.dry_run,
        source_dirs=run.plan.playbook.source_dirs,
        state_dir=run.options.state_dir,
        log=log,
        settings=run.plan.settings[host.name],
        services=run.services,
        vars={**run.plan.playbook.vars, **host.vars},
    )
    try:
        records: list[StepRecord] = []
        if run.options.only_drifted:
            try:
                audit = _audit(run, context, carried)
            except HostUnreachable as error:
                return _finish(run, outcome_of(context, "unreachable", [], mask(str(error))))
            records = list(audit.records)
            context.report["drift"] = audit.to_report()
            if not audit.drifted:
                return _finish(run, outcome_of(context, "ok", records, None))
        return _finish(run, run_host(context, run.plan.playbook.steps, run.listener, carried, records))
    finally:
        try:
            connection.close()
        except Exception as error:  # the host's work is done and journaled: a failed goodbye changes nothing
            log.write("!", f"closing the connection failed: {type(error).__name__}: {error}")
        log.close()


def _run_host_guarded(run: _Run, host: Host, carried: dict[str, StepRecord]) -> HostOutcome:
    """`_run_host`, with any error it lets through turned into this host's failure.

    An exception escaping a worker thread would lose the host: it would read as "not run" in a run
    that exits 0.
    """
    try:
        return _run_host(run, host, carried)
    except StateDirError:
        raise  # the state dir is full or gone: the run stops and says so once, not per host
    except ClaimLost as error:  # a shared rollout's host this node no longer holds: not a failure of the host
        return _finish(run, HostOutcome(host.name, host.address, "skipped", (), str(error)))
    except Exception as error:
        log = HostLog(run.journal.host_log_path(host.name))
        log.write("!", traceback.format_exc())
        log.close()
        detail = "".join(traceback.format_exception_only(error)).strip()
        message = f"internal error: {detail} (traceback in the host log)"
        return _finish(run, HostOutcome(host.name, host.address, "failed", (), mask(message)))


def _audit(run: _Run, context: HostContext, carried: dict[str, StepRecord]) -> Audit:
    """The read-only pass of a drift-only run on one host (see agent/runner/drift.py)."""
    known = interrupted_changes(run.plan.playbook, carried)
    if _uses_account(run.plan) and not run.options.dry_run:
        ledger = run.services.ledger(context.settings.account.ledger_location(run.options.state_dir))
        known += unconfirmed_activations(ledger, context.host.name)
    steps = audit_steps(run.plan.playbook)
    return audit_host(steps, lambda planned: run_step(context, planned, run.listener, audit=True), known)


def _finish(run: _Run, outcome: HostOutcome) -> HostOutcome:
    run.listener(HostFinished(outcome))
    return outcome


def _outcome_from_journal(host: Host, finished: dict[str, Any], steps: dict[str, StepRecord]) -> HostOutcome:
    return HostOutcome(
        host.name, host.address, finished["status"], tuple(steps.values()), None, finished.get("report") or {}
    )


def _not_run(host: Host, reason: str | None) -> HostOutcome:
    return HostOutcome(host.name, host.address, "skipped", (), f"not run: {reason or 'run stopped early'}")
