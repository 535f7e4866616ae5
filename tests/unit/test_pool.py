"""The run's worker pool: every item worked once, and a dry source costs no thread."""

from __future__ import annotations

import threading

from agent.runner.pool import run_pool


def test_every_item_is_worked_once_on_at_most_forks_threads():
    items = list(range(40))
    worked: list[int] = []
    workers: set[str] = set()
    mutex = threading.Lock()

    def work(item: int) -> None:
        with mutex:
            worked.append(item)
            workers.add(threading.current_thread().name)

    run_pool(lambda: items.pop() if items else None, 5, work)
    assert sorted(worked) == list(range(40))
    assert 1 <= len(workers) <= 5
    assert threading.main_thread().name not in workers


def test_a_dry_source_is_asked_once_and_starts_no_thread(monkeypatch):
    askers: list[threading.Thread] = []
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def claim() -> None:
        askers.append(threading.current_thread())
        return None

    def start(thread: threading.Thread) -> None:
        started.append(thread)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    run_pool(claim, 100, lambda item: None, expected=100)
    assert askers == [threading.main_thread()]
    assert started == []
