"""`ispagent runs`: the journaled runs, to find the one to --resume; `runs prune` removes old ones."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.runner.journal import scan_runs
from agent.secrets import printable
from agent.statedir import default_state_dir

STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run journals live (default $ISPAGENT_STATE_DIR or ~/.local/state/ispagent).",
)


@click.group(invoke_without_command=True)
@STATE_DIR
@click.option(
    "-n", "--last", type=click.IntRange(1), default=20, show_default=True, help="How many runs, newest first."
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_context
def runs(ctx: click.Context, state_dir: Path | None, last: int, as_json: bool) -> None:
    """List journaled runs, newest first: id, status, playbook, hosts.

    A run whose status is `running` but whose process is gone was killed: finish it with
    `ispagent run --resume RUN_ID`. `ispagent runs prune` removes old journals.
    """
    if ctx.invoked_subcommand:
        return
    state_dir = state_dir or default_state_dir()
    listing = scan_runs(state_dir)
    records = listing.records[:last]
    if listing.skipped_line(state_dir):
        echo(listing.skipped_line(state_dir), err=True)
    if as_json:
        echo_json([record.__dict__ for record in records])
        return
    if not records:
        echo("no runs yet")
        return
    echo(f"{'RUN ID':<23}  {'STATUS':<11}  {'STARTED':<25}  {'HOSTS':>5}  PLAYBOOK")
    for record in records:
        resumed = f" (resumed {len(record.resumed_at)}x)" if record.resumed_at else ""
        echo(
            f"{record.run_id:<23}  {_cell(record.status):<11}  {_cell(record.started_at):<25}  {len(record.hosts):>5}  "
            f"{_cell(Path(record.playbook).name)}{resumed}"
        )


def _cell(text: str) -> str:
    """A table cell on one line: a line break in a run.json field must not draw a row of its own."""
    return printable(text, one_line=True)


@runs.command()
@STATE_DIR
@click.option("--keep", type=click.IntRange(0), metavar="N", help="Keep the newest N runs.")
@click.option("--older-than", type=click.FloatRange(0), metavar="DAYS", help="Remove runs started more than DAYS ago.")
@click.option(
    "--include-resumable",
    is_flag=True,
    help="Also remove runs that `run --resume` could still finish (never one whose process is alive).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def prune(
    state_dir: Path | None, keep: int | None, older_than: float | None, include_resumable: bool, dry_run: bool
) -> None:
    """Remove old run journals: beyond the newest --keep N, and/or older than --older-than DAYS.

    Runs that can still be resumed (interrupted, aborted, hosts failed, killed) are kept unless
    --include-resumable; a run whose process is still alive is always kept.
    """
    from agent.runner.retention import prune_runs

    result = prune_runs(
        state_dir or default_state_dir(),
        keep=keep,
        older_than_days=older_than,
        include_resumable=include_resumable,
        dry_run=dry_run,
    )
    verb = "would remove" if dry_run else "removed"
    echo(f"{verb} {len(result.removed)} run(s), {result.freed_bytes / 1e6:.1f} MB")
    if result.kept_resumable:
        echo(
            f"kept {len(result.kept_resumable)} resumable run(s) (--include-resumable removes them): "
            f"{', '.join(result.kept_resumable)}"
        )
    if result.skipped:
        echo(result.skipped, err=True)
    if result.kept_running:
        echo(f"kept {len(result.kept_running)} running run(s): {', '.join(result.kept_running)}")


@runs.command()
@click.argument("run_id")
@STATE_DIR
@click.option("--report-json", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON run report here.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@click.option(
    "--report-html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML run report here.",
)
def show(
    run_id: str, state_dir: Path | None, report_json: Path | None, junit: Path | None, report_html: Path | None
) -> None:
    """Print run RUN_ID's summary from its journal; --report-* render its reports as `run --report-*` would have.

    For an unattended (scheduled) run, looked at afterwards: the same JSON, JUnit and HTML, read from
    the run's journal, with no report asked for in advance.
    """
    from agent.cli.report_files import check_outputs, write_reports
    from agent.cli.run_output import print_run_end
    from agent.runner.recorded import recorded_result

    check_outputs(report_json=report_json, junit=junit, report_html=report_html)
    result = recorded_result(state_dir or default_state_dir(), run_id)
    write_reports(result, report_json, junit, report_html)
    print_run_end(result, quiet=False)
