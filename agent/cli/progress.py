"""How a run looks on the terminal: live progress on a TTY, plain lines otherwise, then a summary."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from agent.cli.output import echo
from agent.runner.events import (
    BatchFinished,
    Event,
    HostFinished,
    HostStarted,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from agent.runner.run import RunResult
from agent.secrets import printable

_COLORS = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red", "skipped": "cyan"}


class PlainProgress:
    """One line per finished step and host: readable in logs, cron mail and CI output."""

    def __init__(self, stream: TextIO | None = None, show_diffs: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.show_diffs = show_diffs
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = self.describe(event)
        if line is not None:
            with self._lock:
                echo(line, file=self.stream)

    def describe(self, event: Event) -> str | None:
        if isinstance(event, RunStarted):
            verb = "resuming" if event.resumed else "starting"
            return f"run {event.run_id}: {verb} on {event.hosts} host(s)"
        if isinstance(event, StepFinished):
            record = event.record
            text = f"{event.host}: {record.step}: {record.status} ({record.duration_s:.2f}s) {record.message}".rstrip()
            diff = (record.data or {}).get("diff")
            return f"{text}\n{diff.rstrip()}" if diff and self.show_diffs else text
        if isinstance(event, HostFinished):
            outcome = event.outcome
            return f"{outcome.name}: => {outcome.status}" + (f": {outcome.error}" if outcome.error else "")
        if isinstance(event, BatchFinished):
            return f"batch {event.index} done ({event.hosts} host(s)); {event.failed_percent:g}% of hosts so far failed"
        if isinstance(event, RunFinished) and event.reason:
            return f"run {event.status}: {event.reason}"
        return None

    def close(self) -> None:
        pass


class LiveProgress(PlainProgress):
    """On a TTY: a live line of counts and the step each running host is on; failures as they happen."""

    def __init__(self, total_hint: int = 0, show_diffs: bool = False) -> None:
        super().__init__(sys.stdout, show_diffs)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(highlight=False)
        self.live = Live(console=self.console, refresh_per_second=8, transient=True)
        self.total = total_hint
        self.running: dict[str, str] = {}
        self.counts = {key: 0 for key in _COLORS}
        self.live.start()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RunStarted):
                self.total = event.hosts
                self._print(self.describe(event))
            elif isinstance(event, HostStarted):
                self.running[event.host] = "connect"
            elif isinstance(event, StepStarted):
                self.running[event.host] = event.step
            elif isinstance(event, StepFinished) and self.show_diffs and (event.record.data or {}).get("diff"):
                self._print(self.describe(event))
            elif isinstance(event, HostFinished):
                self.running.pop(event.outcome.name, None)
                self.counts[event.outcome.status] += 1
                if event.outcome.status in ("failed", "unreachable"):
                    self._print(f"{event.outcome.name}: {event.outcome.status}: {event.outcome.error}", style="red")
            elif isinstance(event, RunFinished) and event.reason:
                self._print(self.describe(event))
            self.live.update(self._status_line())

    def _print(self, text: str, style: str | None = None) -> None:
        # Plain text, not rich markup: a host's error could otherwise restyle or hide the line.
        self.console.print(printable(text), markup=False, highlight=False, style=style)

    def _status_line(self) -> str:
        done = sum(self.counts.values())
        counts = "  ".join(f"[{_COLORS[k]}]{k} {v}[/]" for k, v in self.counts.items() if v)
        from rich.markup import escape  # live progress only: plain and quiet runs do without rich

        running = escape(", ".join(f"{host}:{step}" for host, step in list(self.running.items())[:6]))
        more = f" +{len(self.running) - 6}" if len(self.running) > 6 else ""
        return f"{done}/{self.total} hosts  {counts}  [dim]{running}{more}[/]"

    def close(self) -> None:
        self.live.stop()


def print_summary(result: RunResult) -> None:
    """The table at the end: one row per host, then the totals."""
    width = max([len(h.name) for h in result.hosts] + [4])
    echo(f"\n{'HOST'.ljust(width)}  {'STATUS':<11}  {'STEPS':<24}  DETAIL")
    for host in result.hosts:
        steps = " ".join(_mark(s.status) for s in host.steps) or "-"
        echo(f"{host.name.ljust(width)}  ", nl=False)
        echo(f"{host.status:<11}", nl=False, color=_COLORS.get(host.status))
        echo(f"  {steps:<24}  {host.error or ''}".rstrip())
    totals = ", ".join(f"{status} {result.count(status)}" for status in _COLORS)
    echo(f"\nrun {result.run_id} {result.status}: {len(result.hosts)} host(s): {totals}")


def _mark(status: str) -> str:
    return {"ok": ".", "changed": "c", "skipped": "s", "failed": "F"}.get(status, "?")
