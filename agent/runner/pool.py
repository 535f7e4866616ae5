"""The worker pool of a run: up to `forks` threads taking work from a claim function until it runs dry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from agent.errors import StateDirError

T = TypeVar("T")

# A host in flight holds its SSH socket, its host log and, for a moment, a file it uploads or a
# pipe; the run itself holds the journal, the ledger, the partner clients' sockets and Python's own.
FILES_PER_HOST = 4
FILES_BESIDE_HOSTS = 256


def run_pool(claim: Callable[[], T | None], forks: int, work: Callable[[T], None], expected: int | None = None) -> None:
    """Run `work` on what `claim` hands out, on up to `forks` daemon threads; Ctrl-C stays deliverable.

    `expected`, when known, is how many items `claim` will hand out at most: no more threads start.
    A StateDirError from `work` stops its worker (the state dir cannot be written) and is raised
    once every worker ended.
    """
    first = claim()
    if first is None:
        return  # a dry source costs no thread (a run's last round of batches asks once more)
    handed = [first]
    lock = threading.Lock()
    # Workers wait at this gate until all are started. Thread.start() waits for the new thread to
    # take the GIL once; behind running workers (handshakes, packets) that took 5-15 ms per
    # thread, so the fiftieth host began 0.7 s after the first (cProfile of a 50-host run).
    gate = threading.Event()
    stopped: list[StateDirError] = []

    def worker() -> None:
        gate.wait()
        while not stopped:
            with lock:
                item = handed.pop() if handed else claim()
            if item is None:
                return
            try:
                work(item)
            except StateDirError as error:
                stopped.append(error)
                return

    # Daemon threads: on interrupt the process exits at once; the journal says what was finished.
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(forks, expected or forks)))]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if stopped:
        raise stopped[0]


def files_for(forks: int) -> int:
    """Open files a run with `forks` hosts in flight may hold."""
    return forks * FILES_PER_HOST + FILES_BESIDE_HOSTS


def allow_open_files(wanted: int) -> int:
    """Raise this process's soft limit on open files towards `wanted` (at most to the hard limit).

    Many systems start processes with a soft limit of 1024: `--forks 300` would run out of
    descriptors, and a failed socket() or open() reads as an unreachable or failed host. The CLI
    calls it; a library caller decides for its own process. Returns the soft limit now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
