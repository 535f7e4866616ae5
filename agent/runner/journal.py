"""The run journal: every run's record and events, written durably as they happen.

Layout under the state directory:

    runs/<run_id>/run.json       what was run, with which options, and how it ended
    runs/<run_id>/events.jsonl   one JSON object per event, in order; fsynced before a host goes on past
                                 a step whose repeat would not be harmless
    runs/<run_id>/hosts/<host>.log   remote commands and output, secrets masked
    locks/<inventory hash>.lock  held (flock) while a run changes that inventory's hosts

A run killed at any moment leaves a journal from which `run --resume` finishes only what did not.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from agent.atomicfile import write_atomic
from agent.errors import InputError, RunAborted, StateDirError
from agent.runner.events import Event, HostFinished, HostStarted, StepFinished, StepRecord, StepStarted, event_to_json
from agent.secrets import masked, shown
from agent.statedir import ensure_state_dir, make_state_dirs, open_state_file, read_state_file

RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunRecord:
    run_id: str
    playbook: str
    playbook_sha256: str
    inventory: str
    hosts: list[str]
    options: dict[str, Any]
    started_at: str
    status: str = "running"  # running | finished | aborted | interrupted
    finished_at: str | None = None
    reason: str | None = None
    resumed_at: list[str] = field(default_factory=list)
    pid: int | None = None  # of the process running it now (or last): a live one is never pruned
    summary: dict[str, int] | None = None  # hosts by status once it ended: failed ones make it resumable
    addresses: dict[str, str] | None = None  # host name -> address, once it ended (`runs show`)
    standing: dict[str, Any] | None = None  # AccountStanding.to_report() after the hosts, once it ended

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """The record in a run.json; ValueError when it does not have the shape we write."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key, kinds in _FIELD_TYPES.items():
            if key in data and not isinstance(data[key], kinds):
                raise ValueError(f"field {key!r} is not {' or '.join(kind.__name__ for kind in kinds)}")
        if not all(isinstance(item, str) for key in ("hosts", "resumed_at") for item in data.get(key) or ()):
            raise ValueError("'hosts' and 'resumed_at' must be lists of text")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


_REQUIRED = ("run_id", "playbook", "playbook_sha256", "inventory", "hosts", "options", "started_at")
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "playbook": (str,),
    "playbook_sha256": (str,),
    "inventory": (str,),
    "hosts": (list,),
    "options": (dict,),
    "started_at": (str,),
    "status": (str,),
    "finished_at": (str, type(None)),
    "reason": (str, type(None)),
    "resumed_at": (list,),
    "pid": (int, type(None)),
    "summary": (dict, type(None)),
    "addresses": (dict, type(None)),
    "standing": (dict, type(None)),
}


def _host_waits_for(event: Event) -> bool:
    """Must the host that sent `event` wait until it is on disk? Not for starts (resume reads only
    what finished), nor for a host's end (a resumed run that misses it goes back to the host, and
    finds its steps done), nor for a step end that a resumed run may safely do again."""
    if isinstance(event, StepFinished):
        return event.durable
    return not isinstance(event, (HostStarted, StepStarted, HostFinished))


class JournalWatch(Protocol):
    """Told when chosen events are on disk: a test harness crashes the process there (tests/harness)."""

    def urgent(self, data: dict[str, Any]) -> bool:
        """Must this event (as journaled) be made durable at once, start events too?"""
        ...

    def durable(self, data: dict[str, Any]) -> None:
        """An event `urgent` chose is on disk; called in the thread that journaled it."""
        ...


class Journal:
    """One run's directory: its record, its durable event log, its host logs."""

    def __init__(self, state_dir: Path, run_id: str, watch: JournalWatch | None = None) -> None:
        self.state_dir = state_dir
        self.run_id = run_id
        self.dir = state_dir / "runs" / run_id
        self._events: TextIO | None = None
        self._lock = threading.Condition()
        self._pending: list[str] = []
        self._queued = 0  # events handed to the journal
        self._durable = 0  # events written and fsynced
        self._writing = False
        self.watch = watch
        self.broken: StateDirError | None = None  # set once an event could not be written

    @property
    def record_path(self) -> Path:
        return self.dir / "run.json"

    @property
    def events_path(self) -> Path:
        return self.dir / "events.jsonl"

    def host_log_path(self, host: str) -> Path:
        return self.dir / "hosts" / f"{host}.log"

    def _relative(self, name: str) -> str:
        return f"runs/{self.run_id}/{name}"

    def _make_dirs(self) -> None:
        """The run's directories, 0700 and real (a planted link at runs/ID or hosts/ would steer our writes)."""
        ensure_state_dir(self.state_dir)
        make_state_dirs(self.state_dir, self._relative("hosts"))

    def write_record(self, record: RunRecord) -> None:
        self._make_dirs()
        try:
            # Masked as data, then encoded: masking the JSON text once turned a secret `status` into a lost key.
            # Compact: json's C encoder (indent= takes its pure-Python one, 0.2 s for the 20 000 expiring
            # licenses of a large account's standing); `runs show` is how a person reads it.
            text = json.dumps(masked(record.__dict__), separators=(",", ":"))
            write_atomic(self.record_path, (text + "\n").encode())
        except OSError as error:
            raise state_dir_error(self.state_dir, error) from None

    def read_record(self) -> RunRecord:
        if not RUN_ID.fullmatch(self.run_id):  # it names a directory: `../..` must not reach another one
            raise InputError(
                f"{shown(self.run_id)} is not a run id (like 20261126T155417-8c50ad); list runs with: ispagent runs"
            )
        ensure_state_dir(self.state_dir, create=False)
        try:
            record = RunRecord.from_json(load_json(read_state_file(self.state_dir, self._relative("run.json"))))
        except FileNotFoundError:
            raise InputError(
                f"no run {shown(self.run_id)} in {self.state_dir / 'runs'}; list runs with: ispagent runs"
            ) from None
        except (ValueError, TypeError) as error:
            raise InputError(f"{self.record_path}: unreadable run record: {shown(str(error))}") from None
        record.run_id = self.run_id  # the directory says which run this is, not a field inside it
        return record

    def open_events(self) -> None:
        self._make_dirs()
        fd = open_state_file(self.state_dir, self._relative("events.jsonl"), os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            self._events = events = open(fd, "a", encoding="utf-8")
            if _ends_cut_short(fd):
                # A killed run's half-written last line: end it, or the next event is glued onto it and lost.
                events.write("\n")
                events.flush()
        except OSError as error:
            raise state_dir_error(self.state_dir, error) from None

    def __call__(self, event: Event) -> None:
        """Append `event` durably (fsync) before the run goes on: a crash loses nothing recorded.

        Group commit: the thread that finds no write in progress writes and fsyncs every line
        queued so far, the others wait for it. One fsync serves many hosts, instead of 50 threads
        queueing behind one fsync each.

        Starts, host ends and the ends of steps that are safe to do again are not waited for
        (`_host_waits_for`): written at once when no write is in progress (`runs show` sees them;
        else with the next write), on disk with the next fsync, the run's end at the latest.
        Waiting for starts cost every host five more fsync waits in a four-step playbook; for the
        rest, 0.8 % of a 50-host run's wall time.
        """
        data = event_to_json(event)
        line = json.dumps(masked({"at": round(time.time(), 3), **data})) + "\n"
        with self._lock:
            if self.broken:  # nothing more can be made durable: the run must stop, not go on unjournaled
                raise self.broken
            self._pending.append(line)
            self._queued += 1
            mine = self._queued
            urgent = self.watch is not None and self.watch.urgent(data)
            if self._events is not None and not urgent and not _host_waits_for(event):
                self._write_queued()
                return
            while self._durable < mine:
                if self._writing:
                    self._lock.wait()
                    continue
                self._write_pending(durable=True)
            self._write_queued()
            if urgent and self.watch is not None:
                self.watch.durable(data)

    def _write_queued(self) -> None:
        """Write (no fsync) the lines queued so far, unless a write is in progress: its writer
        comes here when it is done, and takes those queued meanwhile."""
        while self._pending and not self._writing and self._events is not None:
            self._write_pending(durable=False)

    def _write_pending(self, *, durable: bool) -> None:
        """Write every queued line, and fsync when `durable`. Called with the lock held; it is
        released while the file is written, and `_writing` keeps a second writer out meanwhile."""
        events = self._events
        if events is None:
            raise RuntimeError("the journal's events file is not open: open_events() comes first")
        batch, upto = "".join(self._pending), self._queued
        self._pending.clear()
        self._writing = True
        self._lock.release()
        try:
            events.write(batch)
            events.flush()
            if durable:
                os.fsync(events.fileno())
        except OSError as error:
            self.broken = state_dir_error(self.state_dir, error)
            raise self.broken from None
        finally:
            self._lock.acquire()
            self._writing = False
            self._lock.notify_all()
        if durable:
            self._durable = upto

    def close(self) -> None:
        with self._lock:
            while self._writing:
                self._lock.wait()
            if self._events is None:
                return
            events, self._events = self._events, None
            try:
                if self._durable < self._queued and self.broken is None:  # lines not yet on disk
                    events.write("".join(self._pending))
                    self._pending.clear()
                    events.flush()
                    os.fsync(events.fileno())
                    self._durable = self._queued
                events.close()
            except OSError as error:
                # A full disk: what a failed write left in the buffer fails again here. The file is
                # closed all the same (io closes the descriptor when the final flush fails).
                if self.broken is None:
                    self.broken = state_dir_error(self.state_dir, error)
                    raise self.broken from None

    def finished_work(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, StepRecord]]]:
        """From the events so far: each finished host's last host_finished event, and each host's finished steps."""
        host_status: dict[str, dict[str, Any]] = {}
        steps: dict[str, dict[str, StepRecord]] = {}
        try:
            text = read_state_file(self.state_dir, self._relative("events.jsonl")).decode("utf-8", "replace")
        except FileNotFoundError:
            return host_status, steps
        for line in text.splitlines():
            try:
                event = load_json(line)
            except ValueError:
                continue  # the last line of a killed run may be cut short
            try:
                _replay(event, host_status, steps)
            except (KeyError, TypeError, AttributeError):
                continue  # not an event we wrote: its host and steps run again, never skipped on its word
        return host_status, steps


def _replay(event: Any, host_status: dict[str, dict[str, Any]], steps: dict[str, dict[str, StepRecord]]) -> None:
    kind = event.get("event")
    if kind == "step_finished":
        record = StepRecord(event["step"], event["status"], event["changed"], event["duration_s"], event["message"])
        if not _shaped_as_written(record):
            raise TypeError("not a step_finished event as the journal writes it")
        steps.setdefault(event["host"], {})[event["step"]] = record
    elif kind == "host_finished":
        host_status[event["host"]] = event
    elif kind == "host_started":
        host_status.pop(event["host"], None)
        steps.setdefault(event["host"], {})


def _shaped_as_written(record: StepRecord) -> bool:
    """A replayed step has the types StepRecord.to_json writes: a damaged one (a duration that is text) is not
    done, and must not reach a report's arithmetic (`runs show` ended in a traceback on one)."""
    duration = record.duration_s
    return (
        all(isinstance(text, str) for text in (record.step, record.status, record.message))
        and isinstance(record.changed, bool)
        and isinstance(duration, (int, float))
        and not isinstance(duration, bool)
        and 0 <= duration < float("inf")
    )


def state_dir_error(state_dir: Path, error: OSError) -> StateDirError:
    reason = error.strerror or type(error).__name__
    return StateDirError(
        f"state dir {state_dir}: cannot write ({reason}): free space or fix it, then"
        " finish with `ispagent run --resume RUN_ID` (`ispagent runs` lists runs)"
    )


def _ends_cut_short(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


@dataclass(frozen=True)
class RunListing:
    """What is under a state dir's runs/: the journaled runs, newest first, and what is not one (name, why)."""

    records: list[RunRecord]
    skipped: list[tuple[str, str]]

    def skipped_line(self, state_dir: Path) -> str | None:
        """The one line that names what was skipped, or None."""
        if not self.skipped:
            return None
        named = "; ".join(f"{shown(name, 40)} ({why})" for name, why in self.skipped[:5])
        more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return (
            f"skipped {len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} under {state_dir / 'runs'} "
            f"that are not run journals (left as they are): {named}{more}"
        )


def scan_runs(state_dir: Path) -> RunListing:
    """Every journaled run under `state_dir`, by its directory's name: a run.json never says which run it is.

    Anything else under runs/ (a link, a file, a name that is not a run id, an unreadable record)
    is skipped and named; none of it is ever read through a link or deleted.
    """
    if not ensure_state_dir(state_dir, create=False):
        return RunListing([], [])
    try:
        entries = sorted(os.scandir(state_dir / "runs"), key=lambda entry: entry.name, reverse=True)
    except FileNotFoundError:
        return RunListing([], [])
    except OSError as error:
        raise state_dir_error(state_dir, error) from None
    records, skipped = [], []
    for entry in entries:
        why = _not_a_run(entry)
        if why is None:
            try:
                record = RunRecord.from_json(load_json(read_state_file(state_dir, f"runs/{entry.name}/run.json")))
                record.run_id = entry.name
                records.append(record)
                continue
            except FileNotFoundError:
                why = "no run.json"
            except (StateDirError, OSError, ValueError) as error:
                why = (
                    f"unreadable run.json: {error}"
                    if isinstance(error, ValueError)
                    else "run.json is not a regular file"
                )
        skipped.append((entry.name, why))
    return RunListing(records, skipped)


def load_json(data: str | bytes) -> Any:
    """`json.loads`, with JSON nested past Python's recursion limit (`[[[[...`) a ValueError like any
    other damaged record, not a RecursionError that ends a nightly `runs prune` in a traceback."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _not_a_run(entry: os.DirEntry[str]) -> str | None:
    if entry.is_symlink():
        return "a symbolic link"
    if not entry.is_dir(follow_symlinks=False):
        return "not a directory"
    if not RUN_ID.fullmatch(entry.name):
        return "not a run id"
    return None


def list_runs(state_dir: Path) -> list[RunRecord]:
    """Every journaled run under `state_dir`, newest first; what is not one is left out (see `scan_runs`)."""
    return scan_runs(state_dir).records


class InventoryLock:
    """An exclusive lock on an inventory's hosts for one run; a second run gets RunAborted.

    `key` names the hosts (the inventory file's path, or what RunPlan.lock_key() makes of hosts
    given as objects); `label` names them in the message.
    """

    def __init__(self, state_dir: Path, key: str, label: str, run_id: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = state_dir / "locks" / f"{digest}.lock"
        self.inventory = label
        self.run_id = run_id
        self._fd: int | None = None

    def __enter__(self) -> InventoryLock:
        # Never through a link: a planted locks/X.lock link made the truncate below empty its target.
        state_dir = self.path.parent.parent
        ensure_state_dir(state_dir)
        fd = open_state_file(state_dir, f"locks/{self.path.name}", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another run"
            os.close(fd)
            raise RunAborted(
                f"{self.inventory}: {holder} is already working on these hosts; "
                "wait for it to finish (the lock frees itself when that process ends)"
            ) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"run {self.run_id} (pid {os.getpid()})".encode())
        except OSError as error:
            self.__exit__()
            raise state_dir_error(self.path.parent.parent, error) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
