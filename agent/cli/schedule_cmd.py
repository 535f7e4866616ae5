"""`ispagent schedule add|remove`: install a nightly run as a systemd timer pair or a cron file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from agent.cli.output import echo
from agent.errors import InputError
from agent.scheduling import (
    cron_file,
    install_job,
    job_environment,
    make_job,
    remove_job,
    schedule_files,
    service_unit,
    timer_unit,
)

FILE = click.Path(dir_okay=False, path_type=Path)
DIR = click.Path(file_okay=False, path_type=Path)
UNIT_DIR = click.option(
    "--unit-dir", type=DIR, default=Path("/etc/systemd/system"), show_default=True, help="Where the systemd units go."
)
CRON_DIR = click.option(
    "--cron-dir",
    type=DIR,
    default=Path("/etc/cron.d"),
    show_default=True,
    help="Where the cron file goes (with --cron).",
)


@click.group()
def schedule() -> None:
    """Run a playbook unattended every night: systemd timer (default) or cron."""


@schedule.command()
@click.argument("playbook", type=FILE)
@click.option("-i", "--inventory", type=FILE, required=True, help="Inventory YAML file.")
@click.option(
    "--name", default="nightly", show_default=True, help="The job's name: units ispagent-NAME.service/.timer."
)
@click.option("--at", "at", default="02:30", show_default=True, metavar="HH:MM", help="Daily start time.")
@click.option(
    "--random-delay",
    type=int,
    default=60,
    show_default=True,
    metavar="MINUTES",
    help="Start up to this many minutes late, at random.",
)
@click.option(
    "--state-dir", type=DIR, help="The job's state dir (journals, default ledger) [default: /var/lib/ispagent]."
)
@click.option(
    "--env-file", type=FILE, help="Optional 0600 file of secrets for the job [default: /etc/ispagent/NAME.env]."
)
@click.option(
    "--keep-runs", type=click.IntRange(1), default=30, show_default=True, help="Journals kept after each run."
)
@click.option("--only-drifted", is_flag=True, help="Run with --only-drifted (audit first, change only drifted hosts).")
@click.option("--metrics-file", type=FILE, help="Run with --metrics-file (a node_exporter textfile .prom).")
@click.option("--report-html", type=FILE, help="Run with --report-html.")
@click.option("--ispagent", "executable", type=FILE, help="The ispagent to run [default: the one running now].")
@click.option("--cron", is_flag=True, help="Write a cron file instead of the systemd timer pair.")
@UNIT_DIR
@CRON_DIR
@click.option("--print", "just_print", is_flag=True, help="Print the units and the cron line; write nothing.")
def add(
    playbook,
    inventory,
    name,
    at,
    random_delay,
    state_dir,
    env_file,
    keep_runs,
    only_drifted,
    metrics_file,
    report_html,
    executable,
    cron,
    unit_dir,
    cron_dir,
    just_print,
) -> None:
    """Schedule PLAYBOOK over an inventory daily at --at, quiet (-q), pruning old journals after.

    \b
        ispagent schedule add playbooks/reprovision.yaml -i /etc/ispagent/fleet.yaml --only-drifted
        systemctl daemon-reload && systemctl enable --now ispagent-nightly.timer
    """
    options = (
        (("--only-drifted",) if only_drifted else ())
        + _path_option("--metrics-file", metrics_file)
        + _path_option("--report-html", report_html)
    )
    job = make_job(
        name,
        executable or Path(sys.executable).parent / "ispagent",
        playbook,
        inventory,
        at,
        random_delay_minutes=random_delay,
        state_dir=state_dir,
        env_file=env_file,
        keep_runs=keep_runs,
        run_options=options,
    )
    if just_print:
        for title, text in (("service", service_unit(job)), ("timer", timer_unit(job)), ("cron", cron_file(job))):
            echo(f"### {title}\n{text}")
        return
    for path in install_job(job, schedule_files(name, unit_dir, cron_dir), cron=cron):
        echo(f"wrote {path}")
    if not cron:
        echo(f"enable it: systemctl daemon-reload && systemctl enable --now {job.unit}.timer")


@schedule.command()
@click.argument("name")
@UNIT_DIR
@CRON_DIR
def remove(name: str, unit_dir: Path, cron_dir: Path) -> None:
    """Remove job NAME's units or cron file (only files ispagent schedule wrote)."""
    removed = remove_job(schedule_files(name, unit_dir, cron_dir))
    for path in removed:
        echo(f"removed {path}")
    if not removed:
        echo(f"no job {name!r} in {unit_dir} or {cron_dir}")
    elif any(path.suffix == ".timer" for path in removed):
        echo(f"then: systemctl disable --now ispagent-{name}.timer; systemctl daemon-reload")


@schedule.command("exec", hidden=True, context_settings={"ignore_unknown_options": True})
@click.option("--env-file", type=click.Path(path_type=Path), required=True)
@click.option("--state-dir", type=click.Path(path_type=Path), required=True)
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(env_file: Path, state_dir: Path, argv: tuple[str, ...]) -> None:
    """What a cron line runs: ARGV with the env file read as systemd's EnvironmentFile= reads it."""
    environment = job_environment(env_file, state_dir, dict(os.environ))
    try:
        os.execve(argv[0], list(argv), environment)
    except OSError as error:
        raise InputError(f"{argv[0]}: cannot run it ({error.strerror or error}); schedule the job again") from None


def _path_option(option: str, path: Path | None) -> tuple[str, ...]:
    return (option, os.path.abspath(path)) if path else ()
