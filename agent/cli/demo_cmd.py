"""`ispagent demo`: the whole job end to end on the local lab, no real servers or account needed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.output import echo


@click.command()
@click.option("--hosts", type=click.IntRange(1, 1000), default=5, show_default=True, help="Lab hosts to bring up.")
@click.option(
    "--dir",
    "lab_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab"),
    show_default=True,
    help="Lab directory (inventory, keys, state, reports).",
)
@click.option(
    "--playbook",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("install"),
    show_default=True,
    help="Playbook to run: a file, or a shipped playbook's name.",
)
def demo(hosts: int, lab_dir: Path, playbook: Path) -> None:
    """Bring up a local lab, run the playbook over it, then run it again.

    \b
    The second run must change nothing. The lab stays up afterwards, so you can look:
      ssh -F lab/ssh_config h1
      ispagent run install -i lab/inventory.yaml --dry-run
      ispagent licenses list -i lab/inventory.yaml
      ispagent lab down --dir lab
    Needs root (network namespaces); the first run builds a Debian 12 rootfs (about a minute).
    """
    from agent.cli.progress import PlainProgress, print_summary
    from agent.lab.demo import run_demo
    from agent.shipped import find_playbook

    result = run_demo(
        lab_dir, hosts, find_playbook(playbook), PlainProgress(), lambda line: echo(f"lab: {line}", err=True)
    )
    for label, run, report in (
        ("first run", result.first, result.reports[0]),
        ("second run", result.second, result.reports[1]),
    ):
        echo(f"\n== {label} (report: {report})")
        print_summary(run)
    verdict = "second run changed nothing" if result.idempotent else "second run was NOT clean"
    echo(f"\ndemo: {verdict}; lab is up in {lab_dir} (ispagent lab down --dir {lab_dir})")
    sys.exit(max(result.first.exit_code, result.second.exit_code, 0 if result.idempotent else 1))
