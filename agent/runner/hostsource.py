"""Where a run's hosts come from: a host source hands them out one at a time and hears how each ended.

The runner's workers call `claim()` until it gives None, and `release()` with each host's outcome.
StaticHostSource is a fixed list, kept to this run by a lock on the inventory; a source shared by
several control nodes (a rollout in the ledger: agent/runner/fleet.py) or by a Fabric Group plugs in
the same way. A source may also have `carried(host) -> {step id: StepRecord}`: steps the host
finished before this run claimed it (on a node that died), not redone, as `--resume` does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from agent.inventory.model import Host
from agent.runner.events import HostOutcome


@runtime_checkable
class HostSource(Protocol):
    def __enter__(self) -> HostSource:
        """Take what the source needs for the run (a lock, a claim on a rollout)."""
        ...

    def __exit__(self, *exc: object) -> None: ...

    def claim(self) -> Host | None:
        """The next host this run should work on; None ends the worker that asked (a source
        that expects more hosts later waits inside claim instead)."""
        ...

    def release(self, host: Host, outcome: HostOutcome) -> None:
        """`host` is done with (finished, failed or given up): its outcome."""
        ...


class HeldLock(Protocol):
    """A lock held while a source is entered (the inventory's run lock)."""

    def __enter__(self) -> object: ...
    def __exit__(self, *exc: object) -> object: ...


class StaticHostSource:
    """The hosts of a list, each once, in order; `lock` (entered with the source) keeps other runs off them."""

    def __init__(self, hosts: Iterable[Host], lock: HeldLock | None = None) -> None:
        self._pending = list(reversed(list(hosts)))
        self._lock = lock
        self._mutex = threading.Lock()

    def __enter__(self) -> StaticHostSource:
        if self._lock is not None:
            self._lock.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.__exit__(*exc)

    def claim(self) -> Host | None:
        with self._mutex:
            return self._pending.pop() if self._pending else None

    def release(self, host: Host, outcome: HostOutcome) -> None:
        pass  # a list hands each host out once: nothing to give back


class BatchOf:
    """At most `size` claims of `source`: one rolling batch (--batch-size)."""

    def __init__(self, source: HostSource, size: int) -> None:
        self.source = source
        self.left = size
        self.claimed = 0
        self._mutex = threading.Lock()

    def claim(self) -> Host | None:
        with self._mutex:
            if self.left <= 0:
                return None
            host = self.source.claim()
            if host is not None:
                self.left -= 1
                self.claimed += 1
            return host
