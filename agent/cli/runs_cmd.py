"""`ispagent runs`: the journaled runs, to find the one to --resume."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.runner.journal import list_runs
from agent.statedir import default_state_dir


@click.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where run journals live (default $ISPAGENT_STATE_DIR or ~/.local/state/ispagent).")
@click.option("-n", "--last", type=click.IntRange(1), default=20, show_default=True, help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def runs(state_dir: Path | None, last: int, as_json: bool) -> None:
    """List journaled runs, newest first: id, status, playbook, hosts.

    A run whose status is `running` but whose process is gone was killed: finish it with
    `ispagent run --resume RUN_ID`.
    """
    records = list_runs(state_dir or default_state_dir())[:last]
    if as_json:
        echo_json([record.__dict__ for record in records])
        return
    if not records:
        echo("no runs yet")
        return
    echo(f"{'RUN ID':<23}  {'STATUS':<11}  {'STARTED':<25}  {'HOSTS':>5}  PLAYBOOK")
    for record in records:
        resumed = f" (resumed {len(record.resumed_at)}x)" if record.resumed_at else ""
        echo(f"{record.run_id:<23}  {record.status:<11}  {record.started_at:<25}  {len(record.hosts):>5}  "
                   f"{Path(record.playbook).name}{resumed}")
