"""What `ispagent run` prints besides progress: the run id for unattended jobs, quiet mode, the notes under the summary."""

from __future__ import annotations

import sys

from agent.cli.output import echo
from agent.cli.progress import LiveProgress, PlainProgress, print_summary
from agent.runner.events import Event, RunStarted
from agent.runner.run import EXIT_UNCONFIRMED, FAILED_STATUSES, RunResult
from agent.secrets import mask

SHOWN = 5  # items named per note; the rest are counted


class QuietProgress(PlainProgress):
    """-q: nothing while the run goes (cron mails whatever a job prints): only the summary at the end."""

    def describe(self, event: Event) -> str | None:
        return None


class RunIdAnnouncer:
    """The run id on stderr as soon as the journal holds it, so a job killed at any moment can be resumed."""

    def __init__(self, progress: PlainProgress) -> None:
        self.progress = progress

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            verb = "resumed" if event.resumed else "started"
            echo(
                f"ispagent: run {event.run_id} {verb}; if it is killed: ispagent run --resume {event.run_id}", err=True
            )
        self.progress(event)

    def close(self) -> None:
        self.progress.close()


def make_progress(quiet: bool, verbose: bool, show_diffs: bool):
    """Live on a TTY; plain lines (line-buffered, the run id also on stderr) otherwise; nothing with -q."""
    interactive = sys.stdout.isatty()
    if not interactive:
        sys.stdout.reconfigure(line_buffering=True)  # a SIGKILL must not take buffered lines with it
    if quiet:
        return RunIdAnnouncer(QuietProgress())
    if interactive and not verbose:
        return LiveProgress(show_diffs=show_diffs)
    return RunIdAnnouncer(PlainProgress(show_diffs=show_diffs))


def print_quiet_summary(result: RunResult) -> None:
    """Totals and the hosts that did not end ok or changed: what a cron mail needs."""
    for host in result.hosts:
        if host.status in (*FAILED_STATUSES, "skipped"):
            echo(f"{host.name}: {host.status}: {host.error or ''}".rstrip())
    totals = ", ".join(f"{status} {result.count(status)}" for status in ("ok", "changed", *FAILED_STATUSES, "skipped"))
    echo(f"run {result.run_id} {result.status}: {len(result.hosts)} host(s): {totals}")


def summary_notes(result: RunResult) -> list[str]:
    """The lines under the summary: drift, unconfirmed activations (exit 4), expiring licenses."""
    notes = []
    if any("drift" in host.report for host in result.hosts):
        drifted = [host.name for host in result.drifted()]
        clean = sum(1 for host in result.hosts if "drift" in host.report) - len(drifted)
        notes.append(f"drift: {len(drifted)} drifted{_named(drifted)}, {clean} clean (left alone)")
    standing = result.standing
    if standing is None:
        return notes
    if standing.unconfirmed:
        items = [f"license {u.license_id} on {u.host}" for u in standing.unconfirmed]
        notes.append(
            f"{len(items)} activation(s) not yet confirmed by the partner account{_named(items)}; "
            f"the next run retries them (exit {EXIT_UNCONFIRMED})"
        )
    if standing.expiring:
        items = [f"{e.license_id} {e.licname or e.ip} on {e.expires}" for e in standing.expiring]
        notes.append(f"{len(items)} license(s) in the account expire within 30 days{_named(items)}")
    notes += [f"could not read {problem}" for problem in standing.problems]
    return notes


def _named(items: list[str]) -> str:
    if not items:
        return ""
    more = f", +{len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f" ({', '.join(items[:SHOWN])}{more})"


def print_run_end(result: RunResult, quiet: bool) -> None:
    if quiet:
        print_quiet_summary(result)
    else:
        print_summary(result)
    for note in summary_notes(result):
        echo(mask(f"note: {note}"))
