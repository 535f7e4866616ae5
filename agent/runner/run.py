"""Running a playbook over many hosts: parallel, in rolling batches, journaled, resumable."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Callable

from agent.errors import HostUnreachable, InputError, IspagentError, RunAborted, StateDirError
from agent.hostsettings import HostSettings, check_var, read_host_settings
from agent.inventory.model import Host, Inventory
from agent.runner.journal import InventoryLock, Journal, RunRecord, file_sha256, new_run_id, utc_now
from agent.runner.playbook import Playbook, PlaybookStep, load_playbook
from agent.runner.batches import batches, failed_percent, parse_batch_size, threshold_exceeded
from agent.runner.context import HostContext
from agent.runner.drift import as_finding, audit_host, audit_id, audit_steps, interrupted_changes, unconfirmed_activations
from agent.runner.services import RunServices
from agent.runner.standing import AccountStanding, read_standing
from agent.runner.events import (
    BatchFinished,
    HostFinished,
    HostOutcome,
    HostStarted,
    RunFinished,
    RunListener,
    RunStarted,
    StepFinished,
    StepRecord,
    StepStarted,
)
from agent.secrets import mask
from agent.transport.hostlog import HostLog
from agent.transport.ssh import ConnectionFactory
from agent.userpath import expand_home

FAILED_STATUSES = ("failed", "unreachable")
DONE_STATUSES = ("ok", "changed")
# Every host ok, but the partner account has not confirmed some activations yet (the next run's
# report step retries them): an unattended job must not read this as plain success.
EXIT_UNCONFIRMED = 4


@dataclass(frozen=True)
class RunOptions:
    state_dir: Path
    forks: int = 50
    batch_size: str | None = None
    max_fail_percent: float | None = None
    limit: str | None = None
    dry_run: bool = False
    ssh_config: str | None = None
    known_hosts: str | None = None
    host_key_policy: str | None = None
    only_drifted: bool = False  # audit every host read-only first; change only those that drifted

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["state_dir"] = str(self.state_dir)
        return data


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


@dataclass
class _Run:
    """Everything one execution of a run shares between its host threads."""

    record: RunRecord
    playbook: Playbook
    inventory: Inventory
    hosts: list[Host]
    options: RunOptions
    journal: Journal
    listener: RunListener
    echo: Echo | None
    settings: dict[str, HostSettings]
    services: RunServices = field(default_factory=RunServices)
    factory: ConnectionFactory | None = None


def start_run(
    playbook_path: Path,
    inventory_path: Path,
    options: RunOptions,
    listener: RunListener,
    echo: Echo | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run a playbook over the selected hosts of an inventory, as a new journaled run."""
    playbook = load_playbook(playbook_path)
    inventory = _load_inventory(inventory_path, options)
    hosts = list(inventory.select(options.limit))
    parse_batch_size(options.batch_size, len(hosts))  # bad input fails here, before any host is touched
    run_id = run_id or new_run_id()
    record = RunRecord(
        run_id=run_id,
        playbook=str(playbook.path),
        playbook_sha256=file_sha256(playbook.path),
        inventory=str(inventory_path.resolve()),
        hosts=[h.name for h in hosts],
        options=options.to_json(),
        started_at=utc_now(),
        pid=os.getpid(),
    )
    settings = host_settings(playbook, inventory, hosts)
    run = _Run(record, playbook, inventory, hosts, options, Journal(options.state_dir, run_id), listener, echo, settings)
    return _execute(run, resumed=False)


def resume_run(run_id: str, state_dir: Path, listener: RunListener, echo: Echo | None = None) -> RunResult:
    """Finish run `run_id`: hosts that ended ok are kept, finished steps are not redone."""
    journal = Journal(state_dir, run_id)
    record = journal.read_record()
    if record.options.get("dry_run"):
        raise InputError(f"run {run_id} was a dry run: there is nothing to finish; start a real run")
    playbook_path = Path(record.playbook)
    if not playbook_path.exists() or file_sha256(playbook_path) != record.playbook_sha256:
        raise InputError(
            f"{playbook_path}: the playbook changed (or vanished) since run {run_id} started; "
            "resuming would mix two playbooks: start a new run"
        )
    options = RunOptions(**{**record.options, "state_dir": state_dir})
    playbook = load_playbook(playbook_path)
    inventory = _load_inventory(Path(record.inventory), options)
    known = {h.name: h for h in inventory.hosts}
    missing = [name for name in record.hosts if name not in known]
    if missing:
        raise InputError(
            f"{record.inventory}: host(s) {', '.join(missing)} of run {run_id} are no longer in the inventory"
        )
    record.resumed_at.append(utc_now())
    record.status, record.finished_at, record.reason, record.pid = "running", None, None, os.getpid()
    hosts = [known[name] for name in record.hosts]
    settings = host_settings(playbook, inventory, hosts)
    run = _Run(record, playbook, inventory, hosts, options, journal, listener, echo, settings)
    return _execute(run, resumed=True)


def host_settings(playbook: Playbook, inventory: Inventory, hosts: list[Host]) -> dict[str, HostSettings]:
    """Each host's settings (playbook vars <- inventory vars), all checked before any host is contacted.

    A bad value fails the whole run here, with the file and the key, instead of failing every host
    at the step that reads it after facts and preflight already ran.
    """
    for key, value in playbook.vars.items():
        try:
            check_var(key, value)
        except InputError as error:
            problem = str(error).removeprefix(f"var '{key}': ")
            raise type(error)(f"{playbook.path}: vars.{key}: {problem}") from None
    settings = {}
    for host in hosts:
        try:
            settings[host.name] = read_host_settings({**playbook.vars, **host.vars})
        except InputError as error:
            raise type(error)(f"{inventory.path}: hosts.{host.name}: {error}") from None
    return settings


def _load_inventory(path: Path, options: RunOptions) -> Inventory:
    from agent.inventory.loader import load_inventory

    inventory = load_inventory(path, ssh_config=Path(options.ssh_config) if options.ssh_config else None)
    ssh = inventory.ssh
    if options.known_hosts:
        ssh = replace(ssh, known_hosts=expand_home(options.known_hosts))
    if options.host_key_policy:
        ssh = replace(ssh, host_key_policy=options.host_key_policy)
    return replace(inventory, ssh=ssh)


def _execute(run: _Run, *, resumed: bool) -> RunResult:
    result = RunResult(
        run_id=run.record.run_id,
        playbook=run.record.playbook,
        inventory=run.record.inventory,
        started_at=run.record.started_at,
        dry_run=run.options.dry_run,
    )
    with contextlib.ExitStack() as cleanup:
        if not run.options.dry_run:  # a dry run changes nothing: it may overlap a real one
            cleanup.enter_context(InventoryLock(run.options.state_dir, Path(run.record.inventory), run.record.run_id))
        cleanup.callback(run.services.close)
        if _uses_account(run):
            _read_account_credentials(run)
        run.factory = ConnectionFactory(run.inventory.ssh)
        cleanup.callback(run.factory.close)
        run.journal.write_record(run.record)
        run.journal.open_events()
        cleanup.callback(run.journal.close)
        _execute_hosts(run, result, resumed)
    return result


def _uses_account(run: _Run) -> bool:
    return any(planned.type.uses_account for planned in run.playbook.steps)


def _read_standing(run: _Run, result: RunResult) -> None:
    if run.options.dry_run or not _uses_account(run) or result.status == "interrupted":
        return
    settings = [run.settings[host.name] for host in run.hosts]
    licenses = [host.report.get("license") or {} for host in result.hosts]
    orders = [(lic["edition"], lic["period"]) for lic in licenses if lic.get("action") == "ordered"]
    result.standing = read_standing(run.services, settings, [h.name for h in run.hosts], run.options.state_dir,
                                    date.today(), orders)


def _read_account_credentials(run: _Run) -> None:
    """The partner credentials of every host, read once, before any host is contacted."""
    for host in run.hosts:
        try:
            run.services.partner_settings(run.settings[host.name].partner)
        except InputError as error:
            raise type(error)(f"{run.inventory.path}: hosts.{host.name}: {error}") from None


def _execute_hosts(run: _Run, result: RunResult, resumed: bool) -> None:
    host_status, finished_steps = run.journal.finished_work() if resumed else ({}, {})
    listener = _Listeners(run.journal, run.listener)
    run.listener = listener
    outcomes: dict[str, HostOutcome] = {}
    try:
        listener(RunStarted(run.record.run_id, len(run.hosts), resumed))
        for host in run.hosts:
            finished = host_status.get(host.name)
            if finished and finished["status"] in DONE_STATUSES:
                outcomes[host.name] = _outcome_from_journal(host, finished, finished_steps[host.name])
        todo = [h for h in run.hosts if h.name not in outcomes]
        _run_batches(run, todo, finished_steps, outcomes, result)
        if run.journal.broken:
            raise run.journal.broken
        result.hosts = [outcomes.get(h.name) or _not_run(h, result.reason) for h in run.hosts]
        _read_standing(run, result)
    except KeyboardInterrupt:
        result.status, result.reason = "interrupted", "interrupted by signal"
    finally:
        result.hosts = [outcomes.get(h.name) or _not_run(h, result.reason) for h in run.hosts]
        result.finished_at = utc_now()
        listener(RunFinished(result.status, result.reason))
        run.record.status, run.record.finished_at, run.record.reason = result.status, result.finished_at, result.reason
        run.record.summary = {status: result.count(status) for status in ("ok", "changed", *FAILED_STATUSES, "skipped")}
        run.journal.write_record(run.record)


class _Listeners:
    """The journal first (durable), then the caller's listener (display)."""

    def __init__(self, journal: Journal, display: RunListener) -> None:
        self.journal = journal
        self.display = display

    def __call__(self, event) -> None:
        self.journal(event)
        self.display(event)


def _run_batches(run: _Run, todo: list[Host], carried, outcomes: dict[str, HostOutcome], result: RunResult) -> None:
    size = parse_batch_size(run.options.batch_size, len(todo))
    for index, batch in enumerate(batches(todo, size), start=1):
        _run_parallel(batch, run.options.forks, lambda host: _record(outcomes, _run_host_guarded(run, host, carried.get(host.name, {}))))
        failures = sum(1 for o in outcomes.values() if o.status in FAILED_STATUSES)
        percent = failed_percent(failures, len(outcomes))
        run.listener(BatchFinished(index, len(batch), round(percent, 1)))
        if threshold_exceeded(failures, len(outcomes), run.options.max_fail_percent):
            result.status = "aborted"
            result.reason = (
                f"{failures} of {len(outcomes)} hosts failed ({percent:.0f}%), more than "
                f"--max-fail-percent {run.options.max_fail_percent:g}; later batches not started"
            )
            return


def _record(outcomes: dict[str, HostOutcome], outcome: HostOutcome) -> None:
    outcomes[outcome.name] = outcome


def _run_parallel(hosts: list[Host], forks: int, work: Callable[[Host], None]) -> None:
    """Run `work` for every host on up to `forks` daemon threads; Ctrl-C stays deliverable."""
    pending = list(reversed(hosts))
    lock = threading.Lock()
    # Workers wait at this gate until all are started. Thread.start() waits for the new thread to
    # take the GIL once; behind running workers (handshakes, packets) that took 5-15 ms per
    # thread, so the fiftieth host began 0.7 s after the first (cProfile of a 50-host run).
    gate = threading.Event()
    stopped: list[StateDirError] = []

    def worker() -> None:
        gate.wait()
        while True:
            with lock:
                if not pending:
                    return
                host = pending.pop()
            try:
                work(host)
            except StateDirError as error:
                stopped.append(error)  # the state dir cannot be written: no more hosts from this worker
                return

    # Daemon threads: on interrupt the process exits at once; the journal says what was finished.
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(forks, len(hosts))))]
    allow_open_files(len(threads) * FILES_PER_HOST + FILES_BESIDE_HOSTS)
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if stopped:
        raise stopped[0]


# A host in flight holds its SSH socket, its host log and, for a moment, a file it uploads or a
# pipe; the run itself holds the journal, the ledger, the partner clients' sockets and Python's own.
FILES_PER_HOST = 4
FILES_BESIDE_HOSTS = 256


def allow_open_files(wanted: int) -> int:
    """Raise this process's soft limit on open files towards `wanted` (at most to the hard limit).

    Many systems start processes with a soft limit of 1024: `--forks 300` would run out of
    descriptors, and a failed socket() or open() reads as an unreachable or failed host.
    Returns the soft limit now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def _run_host(run: _Run, host: Host, carried: dict[str, StepRecord]) -> HostOutcome:
    run.listener(HostStarted(host.name))
    echo = (lambda line: run.echo(host.name, line)) if run.echo else None
    log = HostLog(run.journal.host_log_path(host.name), echo)
    records: list[StepRecord] = []
    try:
        connection = run.factory.connect(host, log)
    except HostUnreachable as error:
        log.write("!", f"unreachable: {error}")
        log.close()
        return _finish(run, HostOutcome(host.name, host.address, "unreachable", (), mask(str(error))))
    context = HostContext(
        host=host,
        connection=connection,
        dry_run=run.options.dry_run,
        source_dirs=run.playbook.source_dirs,
        state_dir=run.options.state_dir,
        log=log,
        settings=run.settings[host.name],
        services=run.services,
        vars={**run.playbook.vars, **host.vars},
    )
    try:
        if run.options.only_drifted:
            audit = _audit(run, context, carried)
            records += audit.records
            context.report["drift"] = audit.to_report()
            if not audit.drifted:
                return _finish(run, _outcome(context, "ok", records, None))
        for planned in run.playbook.steps:
            previous = carried.get(planned.id)
            if previous and previous.status != "failed" and not planned.type.rerun_on_resume:
                records.append(previous)  # finished before the run was interrupted: not redone
                continue
            record = _run_step(run, context, planned)
            records.append(record)
            if record.status == "failed":
                return _finish(run, _outcome(context, "failed", records, f"{planned.id}: {record.message}"))
        return _finish(run, _outcome(context, _status_of(records), records, None))
    except HostUnreachable as error:
        return _finish(run, _outcome(context, "unreachable", records, mask(str(error))))
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
    except Exception as error:
        log = HostLog(run.journal.host_log_path(host.name))
        log.write("!", traceback.format_exc())
        log.close()
        detail = "".join(traceback.format_exception_only(error)).strip()
        message = f"internal error: {detail} (traceback in the host log)"
        return _finish(run, HostOutcome(host.name, host.address, "failed", (), mask(message)))


def _audit(run: _Run, context: HostContext, carried: dict[str, StepRecord]):
    """The read-only pass of a drift-only run on one host (see agent/runner/drift.py)."""
    known = interrupted_changes(run.playbook, carried)
    if _uses_account(run) and not run.options.dry_run:
        ledger = run.services.ledger(context.settings.ledger_location(run.options.state_dir))
        known += unconfirmed_activations(ledger, context.host.name)
    return audit_host(audit_steps(run.playbook), lambda planned: _run_step(run, context, planned, audit=True), known)


def _run_step(run: _Run, context: HostContext, planned: PlaybookStep, audit: bool = False) -> StepRecord:
    step_id = audit_id(planned) if audit else planned.id
    run.listener(StepStarted(context.host.name, step_id))
    started = time.monotonic()
    try:
        result = planned.type.function(context, planned.params)
        status, message, data = result.status, result.message, result.data
    except HostUnreachable as error:
        record = StepRecord(step_id, "failed", False, time.monotonic() - started, mask(str(error)))
        run.listener(StepFinished(context.host.name, record))
        raise
    except IspagentError as error:
        status, message, data = "failed", str(error), {}
    except Exception as error:  # a bug in a step must stop this host only, and say where to look
        context.log.write("!", traceback.format_exc())
        status, message, data = "failed", f"internal error {type(error).__name__}: {error} (traceback in the host log)", {}
    record = StepRecord(step_id, status, status == "changed", time.monotonic() - started, mask(message), data)
    if audit:
        record = as_finding(record)
    run.listener(StepFinished(context.host.name, record))
    return record


def _status_of(records: list[StepRecord]) -> str:
    return "changed" if any(r.changed for r in records) else "ok"


def _outcome(context: HostContext, status: str, records: list[StepRecord], error: str | None) -> HostOutcome:
    host = context.host
    return HostOutcome(host.name, host.address, status, tuple(records), mask(error) if error else None, context.report)


def _finish(run: _Run, outcome: HostOutcome) -> HostOutcome:
    run.listener(HostFinished(outcome))
    return outcome


def _outcome_from_journal(host: Host, finished: dict, steps: dict[str, StepRecord]) -> HostOutcome:
    return HostOutcome(host.name, host.address, finished["status"], tuple(steps.values()), None, finished.get("report") or {})


def _not_run(host: Host, reason: str | None) -> HostOutcome:
    return HostOutcome(host.name, host.address, "skipped", (), f"not run: {reason or 'run stopped early'}")
