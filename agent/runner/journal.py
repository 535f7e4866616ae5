"""The run journal: every run's record and events, written durably as they happen.

Layout under the state directory:

    runs/<run_id>/run.json       what was run, with which options, and how it ended
    runs/<run_id>/events.jsonl   one JSON object per event, fsynced as written
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from agent.atomicfile import write_atomic
from agent.errors import InputError, RunAborted, StateDirError
from agent.runner.events import Event, HostStarted, StepRecord, StepStarted, event_to_json
from agent.secrets import mask, shown

RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


_STARTS = (HostStarted, StepStarted)


class JournalWatch(Protocol):
    """Told when chosen events are on disk: a test harness crashes the process there (tests/harness)."""

    def urgent(self, data: dict) -> bool:
        """Must this event (as journaled) be made durable at once, start events too?"""
        ...

    def durable(self, data: dict) -> None:
        """An event `urgent` chose is on disk; called in the thread that journaled it."""
        ...


class Journal:
    """One run's directory: its record, its durable event log, its host logs."""

    def __init__(self, state_dir: Path, run_id: str, watch: JournalWatch | None = None) -> None:
        self.state_dir = state_dir
        self.run_id = run_id
        self.dir = state_dir / "runs" / run_id
        self._events = None
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

    def write_record(self, record: RunRecord) -> None:
        try:
            write_atomic(self.record_path, mask(json.dumps(record.__dict__, indent=2) + "\n").encode())
        except OSError as error:
            raise state_dir_error(self.state_dir, error) from None

    def read_record(self) -> RunRecord:
        if not RUN_ID.fullmatch(self.run_id):  # it names a directory: `../..` must not reach another one
            raise InputError(f"{shown(self.run_id)} is not a run id (like 20261126T155417-8c50ad); list runs with: ispagent runs")
        try:
            return RunRecord.from_json(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            raise InputError(
                f"no run {shown(self.run_id)} in {self.state_dir / 'runs'}; list runs with: ispagent runs"
            ) from None
        except (ValueError, TypeError) as error:
            raise InputError(f"{self.record_path}: unreadable run record: {error}") from None

    def open_events(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._events = open(self.events_path, "a", encoding="utf-8")
            if _ends_cut_short(self.events_path):
                # A killed run's half-written last line: end it, or the next event is glued onto it and lost.
                self._events.write("\n")
                self._events.flush()
        except OSError as error:
            raise state_dir_error(self.state_dir, error) from None

    def __call__(self, event: Event) -> None:
        """Append `event` durably (fsync) before the run goes on: a crash loses nothing recorded.

        Group commit: the thread that finds no write in progress writes and fsyncs every line
        queued so far, the others wait for it. One fsync serves many hosts, instead of 50 threads
        queueing behind one fsync each.

        Starts of hosts and steps are queued without waiting: resume reads only what finished, and
        they reach the file, in order, with the next fsync (a step's own end, at the latest).
        Waiting for them cost every host five more fsync waits in a four-step playbook.
        """
        data = event_to_json(event)
        line = mask(json.dumps({"at": round(time.time(), 3), **data})) + "\n"
        with self._lock:
            if self.broken:  # nothing more can be made durable: the run must stop, not go on unjournaled
                raise self.broken
            self._pending.append(line)
            self._queued += 1
            mine = self._queued
            urgent = self.watch is not None and self.watch.urgent(data)
            if isinstance(event, _STARTS) and self._events is not None and not urgent:
                return
            while self._durable < mine:
                if self._writing:
                    self._lock.wait()
                    continue
                batch, upto = "".join(self._pending), self._queued
                self._pending.clear()
                self._writing = True
                self._lock.release()
                try:
                    self._events.write(batch)
                    self._events.flush()
                    os.fsync(self._events.fileno())
                    written = upto
                except OSError as error:
                    self.broken = state_dir_error(self.state_dir, error)
                    raise self.broken from None
                finally:
                    self._lock.acquire()
                    self._writing = False
                    self._lock.notify_all()
                self._durable = written
            if urgent:
                self.watch.durable(data)

    def close(self) -> None:
        with self._lock:
            while self._writing:
                self._lock.wait()
            if self._events is None:
                return
            events, self._events = self._events, None
            try:
                if self._pending and self.broken is None:  # starts queued after the last fsync
                    events.write("".join(self._pending))
                    self._pending.clear()
                    events.flush()
                    os.fsync(events.fileno())
                events.close()
            except OSError as error:
                # A full disk: what a failed write left in the buffer fails again here. The file is
                # closed all the same (io closes the descriptor when the final flush fails).
                if self.broken is None:
                    self.broken = state_dir_error(self.state_dir, error)
                    raise self.broken from None

    def finished_work(self) -> tuple[dict[str, dict], dict[str, dict[str, StepRecord]]]:
        """From the events so far: each finished host's last host_finished event, and each host's finished steps."""
        host_status: dict[str, dict] = {}
        steps: dict[str, dict[str, StepRecord]] = {}
        if not self.events_path.exists():
            return host_status, steps
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line of a killed run may be cut short
            kind = event.get("event")
            if kind == "step_finished":
                record = StepRecord(
                    event["step"], event["status"], event["changed"], event["duration_s"], event["message"]
                )
                steps.setdefault(event["host"], {})[event["step"]] = record
            elif kind == "host_finished":
                host_status[event["host"]] = event
            elif kind == "host_started":
                host_status.pop(event["host"], None)
                steps.setdefault(event["host"], {})
        return host_status, steps


def state_dir_error(state_dir: Path, error: OSError) -> StateDirError:
    reason = error.strerror or type(error).__name__
    return StateDirError(f"state dir {state_dir}: cannot write ({reason}): free space or fix it, then"
                         " finish with `ispagent run --resume RUN_ID` (`ispagent runs` lists runs)")


def _ends_cut_short(path: Path) -> bool:
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return False
        handle.seek(size - 1)
        return handle.read(1) != b"\n"


def list_runs(state_dir: Path) -> list[RunRecord]:
    """Every journaled run under `state_dir`, newest first; unreadable records are left out."""
    records = []
    for path in sorted((state_dir / "runs").glob("*/run.json"), reverse=True):
        try:
            records.append(RunRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return records


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise state_dir_error(self.path.parent.parent, error) from None
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

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
