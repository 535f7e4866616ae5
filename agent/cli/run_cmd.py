"""`ispagent run`: run a playbook over an inventory, or resume a run that did not finish."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from agent.cli.output import echo
from agent.cli.report_files import check_outputs, write_reports
from agent.errors import InputError, IspagentError
from agent.statedir import default_state_dir

FILE = click.Path(dir_okay=False, path_type=Path)


def embedding() -> dict:
    """What a program running the CLI in its own process gave `main(obj=...)`: `journal_watch`."""
    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, dict) else {}


def _interrupt_on_sigterm() -> None:
    # cron/systemd stop jobs with SIGTERM: treat it like Ctrl-C so the run is journaled as interrupted.
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command()
@click.argument("playbook", type=FILE, required=False)
@click.option("-i", "--inventory", type=FILE, help="Inventory YAML file.")
@click.option(
    "--resume", "resume_id", metavar="RUN_ID", help="Finish run RUN_ID: only what did not finish is run again."
)
@click.option("-l", "--limit", help="Only these hosts: names, group names or globs, comma-separated.")
@click.option(
    "-f", "--forks", type=click.IntRange(1, 1000), default=50, show_default=True, help="Hosts worked on at once."
)
@click.option(
    "--batch-size",
    metavar="N|N%",
    help="Rolling batches of N hosts (or N% of them); the next batch starts when one is done.",
)
@click.option(
    "--max-fail-percent",
    type=click.FloatRange(0, 100),
    help="Abort (exit 3) when, after a batch, more than this share of hosts failed or was unreachable.",
)
@click.option("--dry-run", is_flag=True, help="Each step says what it would do; nothing on the hosts changes.")
@click.option(
    "--only-drifted",
    is_flag=True,
    help="Audit every host with the playbook's read-only steps first; run the rest only where the audit is not clean.",
)
@click.option("--report-json", type=FILE, help="Write the JSON run report here.")
@click.option("--junit", type=FILE, help="Write a JUnit XML report here.")
@click.option("--report-html", type=FILE, help="Write a self-contained HTML run report here.")
@click.option("--metrics-file", type=FILE, help="Write Prometheus textfile metrics here (also when the run fails).")
@click.option(
    "--known-hosts",
    type=click.Path(dir_okay=False),
    help="known_hosts file (default: the inventory's ssh.known_hosts).",
)
@click.option(
    "--host-key-policy",
    type=click.Choice(["strict", "accept-new"]),
    help="strict (default): unknown or changed host keys are refused; accept-new: record unknown ones.",
)
@click.option(
    "--ssh-config", type=click.Path(dir_okay=False), help="OpenSSH client config to honour (default ~/.ssh/config)."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run journals live (default $ISPAGENT_STATE_DIR or ~/.local/state/ispagent).",
)
@click.option(
    "--rollout",
    metavar="NAME",
    help="Start or join the rollout NAME shared by several control nodes through the PostgreSQL ledger "
    "(ledger_url): hosts are claimed from it; --limit restricts what this node claims.",
)
@click.option(
    "--lease",
    type=click.FloatRange(1),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="With --rollout: how long a claimed host stays this node's without a heartbeat.",
)
@click.option(
    "--wait",
    is_flag=True,
    help=(
        "With --rollout: exit only when the whole rollout is complete, with its exit code "
        "(4 if this node's activations are still unconfirmed)."
    ),
)
@click.option("-v", "--verbose", is_flag=True, help="Show remote commands and their output (secrets masked).")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print only the summary (for cron mail); the run id still goes to stderr."
)
def run(
    playbook,
    inventory,
    resume_id,
    limit,
    forks,
    batch_size,
    max_fail_percent,
    dry_run,
    only_drifted,
    report_json,
    junit,
    report_html,
    metrics_file,
    known_hosts,
    host_key_policy,
    ssh_config,
    state_dir,
    rollout,
    lease,
    wait,
    verbose,
    quiet,
) -> None:
    """Run PLAYBOOK over the hosts of an inventory, or --resume an earlier run.

    \b
    PLAYBOOK is a file, or the name of a playbook shipped with ispagent
    (install, reprovision, audit, decommission, license-only, smoke) when no
    file of that name exists; `ispagent init DIR` copies them to edit.

    \b
    Every step result is journaled as it happens; the run id is printed first
    (on stderr too when stdout is not a terminal). If the run is killed,
    `ispagent run --resume RUN_ID` finishes it: hosts that ended ok are left
    alone and finished steps are not redone.

    \b
    Exit codes: 0 all hosts ok, 1 some hosts failed or unreachable, 2 bad usage
    or input, 3 aborted (fail threshold, or another run holds the lock), 4 all
    hosts ok but some activations are not yet confirmed by the partner account
    (the next run retries them), 130 interrupted.
    """
    from agent.cli.run_output import make_progress, print_run_end
    from agent.runner.pool import allow_open_files, files_for
    from agent.runner.run import RunOptions, RunPlan, resume_run, start_run
    from agent.shipped import find_playbook

    check_outputs(report_json=report_json, junit=junit, report_html=report_html, metrics_file=metrics_file)
    state_dir = state_dir or default_state_dir()
    watch = embedding().get("journal_watch")
    progress = make_progress(quiet, verbose, dry_run)
    echo_remote = (lambda host, line: echo(f"{host}: {line}")) if verbose else None
    _interrupt_on_sigterm()
    result, failure_code, node = None, 1, None
    try:
        if (lease != 60 or wait) and not rollout:
            raise InputError("--lease and --wait are options of --rollout NAME; add it or leave them out")
        if resume_id and rollout:
            raise InputError(
                "--resume finishes a run of this machine; a rollout is joined again with PLAYBOOK -i INVENTORY --rollout NAME"
            )
        if resume_id:
            if playbook or inventory:
                raise InputError("--resume takes the playbook and inventory from the run's journal; give neither")
            allow_open_files(files_for(1000))  # the run's own --forks (at most 1000) is in its journal
            result = resume_run(resume_id, state_dir, progress, echo_remote, journal_watch=watch)
        else:
            if not playbook or not inventory:
                raise InputError("give a PLAYBOOK and -i INVENTORY (or --resume RUN_ID); see ispagent run --help")
            playbook = find_playbook(playbook)
            options = RunOptions(
                state_dir=state_dir,
                forks=forks,
                batch_size=batch_size,
                max_fail_percent=max_fail_percent,
                limit=limit,
                dry_run=dry_run,
                ssh_config=ssh_config,
                known_hosts=known_hosts,
                host_key_policy=host_key_policy,
                only_drifted=only_drifted,
            )
            allow_open_files(files_for(forks))
            if rollout:
                node = _run_node(playbook, inventory, options, rollout, lease, wait, progress, echo_remote, watch)
                result = node.result
            else:
                result = start_run(
                    RunPlan.from_files(playbook, inventory, options), progress, echo_remote, journal_watch=watch
                )
    except IspagentError as error:
        failure_code = error.exit_code
        raise
    except KeyboardInterrupt:
        failure_code = 130
        raise
    finally:
        progress.close()
        if metrics_file:
            from agent.runner.metrics import write_metrics

            write_metrics(metrics_file, result, exit_code=result.exit_code if result else failure_code)
    if node is not None:
        _end_node(node, report_json, junit, report_html, quiet)
    write_reports(result, report_json, junit, report_html)
    print_run_end(result, quiet)
    if result.status != "finished" or result.exit_code == 1:
        echo(f"to finish this run: ispagent run --resume {result.run_id}", err=True)
    sys.exit(result.exit_code)


def _run_node(
    playbook: Path, inventory: Path, options, name: str, lease: float, wait: bool, progress, echo_remote, watch
):
    from agent.runner.fleet import rollout_options, rollout_plan, run_rollout

    plan, claimable = rollout_plan(playbook, inventory, rollout_options(options, name))
    return run_rollout(
        plan, name, progress, echo_remote, claimable=claimable, lease_s=lease, wait=wait, journal_watch=watch
    )


def _end_node(node, report_json: Path | None, junit: Path | None, report_html: Path | None, quiet: bool) -> None:
    """The end of a rollout node: its hosts' summary and reports, the rollout's state, the node's exit code."""
    from agent.cli.rollout_cmd import print_node_end
    from agent.cli.run_output import print_run_end

    # The reports cover the whole rollout (every node's hosts, from the ledger); the summary, this node's.
    report = node.report or node.result
    if report is not None:
        write_reports(report, report_json, junit, report_html)
    if node.result is not None:
        print_run_end(node.result, quiet)
    print_node_end(node)
    sys.exit(node.exit_code)
