"""`ispagent rollout status NAME` and `ispagent rollouts`: shared rollouts as the PostgreSQL ledger has them;
and what `ispagent run --rollout NAME` prints of its node."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.errors import InputError

FILE = click.Path(dir_okay=False, path_type=Path)
INVENTORY = click.option(
    "-i",
    "--inventory",
    type=FILE,
    required=True,
    help="The inventory whose ledger_url names the PostgreSQL ledger that keeps the rollouts.",
)


def _board(inventory: Path):
    from agent.cli.options import inventory_vars
    from agent.ledger import ledger_location
    from agent.ledger.rollouts import RolloutBoard

    return RolloutBoard(ledger_location(inventory_vars(inventory)))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def rollout() -> None:
    """A rollout shared by several control nodes (`ispagent run --rollout NAME`)."""


@rollout.command()
@click.argument("name")
@INVENTORY
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--report-json", type=FILE, help="Write the whole rollout's JSON report (as run's) here.")
@click.option("--junit", type=FILE, help="Write the whole rollout's JUnit XML report here.")
@click.option("--report-html", type=FILE, help="Write the whole rollout's HTML report here.")
def status(
    name: str, inventory: Path, as_json: bool, report_json: Path | None, junit: Path | None, report_html: Path | None
) -> None:
    """Each host's state (pending, claimed by which node until when, ok, changed, failed and why,
    unreachable), each node's last heartbeat and hosts, and whether the rollout is complete.

    The report options write the run report formats for the whole rollout, every node's hosts, from
    the ledger (a host not finished yet is reported as skipped, with who holds it)."""
    from agent.cli.options import inventory_hosts
    from agent.cli.report_files import check_outputs, write_reports
    from agent.runner.rollout_report import rollout_result

    check_outputs(report_json=report_json, junit=junit, report_html=report_html)
    addresses = {host.name: host.address for host in inventory_hosts(inventory)}
    board = _board(inventory)
    try:
        found = board.status(name)
        report = rollout_result(board, name, addresses) if found and (report_json or junit or report_html) else None
    finally:
        board.close()
    if found is None:
        raise InputError(f"no rollout {name} in ledger {board.shown}: `ispagent rollouts -i {inventory}` lists them")
    if report is not None:
        write_reports(report, report_json, junit, report_html)
    if as_json:
        echo_json(found.to_json())
        return
    print_status(found)


def print_status(found) -> None:
    data = found.to_json()
    counts = ", ".join(f"{n} {state}" for state, n in data["counts"].items() if n)
    echo(
        f"rollout {found.name}: {found.playbook} (sha256 {found.playbook_sha256[:12]}), started {_when(found.started_at)} "
        f"UTC by {found.started_by}"
    )
    echo(f"{'complete' if found.complete else 'not complete'}: {counts}")
    echo(f"{'HOST':<24}  {'STATE':<11}  {'NODE':<28}  DETAIL")
    for host in found.hosts:
        detail = ""
        if host.state == "claimed":
            expired = host.lease_until is not None and host.lease_until <= found.now
            detail = f"until {_when(host.lease_until)}" + (" (lease ran out: claimable)" if expired else "")
        elif host.state in ("failed", "unreachable"):
            error = host.error or ""
            # A failed host's error already starts with its step (as the run's summary shows it).
            detail = (
                error
                if not host.failed_step or error.startswith(f"{host.failed_step}:")
                else f"{host.failed_step}: {error}"
            )
        echo(f"{host.name:<24}  {host.state:<11}  {host.node or '-':<28}  {detail}")
    echo(f"{'NODE':<28}  {'STATE':<9}  {'LAST HEARTBEAT':<22}  HOSTS")
    for node in found.nodes:
        hosts = ", ".join(f"{n} {state}" for state, n in sorted(node.counts.items())) or "-"
        age = f"{_when(node.heartbeat_at)} ({found.now - node.heartbeat_at:.0f}s ago)"
        echo(f"{node.node:<28}  {node.state:<9}  {age:<22}  {hosts}")


@click.command()
@INVENTORY
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def rollouts(inventory: Path, as_json: bool) -> None:
    """List the shared rollouts of the inventory's PostgreSQL ledger, oldest first."""
    board = _board(inventory)
    try:
        found = [board.status(name) for name in board.names()]
    finally:
        board.close()
    if as_json:
        echo_json([{key: value for key, value in s.to_json().items() if key not in ("hosts", "nodes")} for s in found])
        return
    if not found:
        echo(f"no rollouts in ledger {board.shown}")
        return
    echo(f"{'ROLLOUT':<24}  {'STARTED (UTC)':<19}  {'STATE':<12}  {'HOSTS':>5}  {'DONE':>5}  {'FAILED':>6}  PLAYBOOK")
    for s in found:
        state = "complete" if s.complete else "in progress"
        echo(
            f"{s.name:<24}  {_when(s.started_at):<19}  {state:<12}  {len(s.hosts):>5}  {s.count('ok', 'changed'):>5}  "
            f"{s.count('failed', 'unreachable'):>6}  {Path(s.playbook).name}"
        )


def print_node_end(node) -> None:
    """After `run --rollout`: what this node did, and where the rollout stands."""
    joined = "started" if node.started else "joined"
    if node.outside:
        echo(
            f"note: {len(node.outside)} host(s) of this inventory are not in rollout {node.name} and were left alone: "
            + ", ".join(node.outside[:5])
            + (" ..." if len(node.outside) > 5 else ""),
            err=True,
        )
    ran = len(node.result.hosts) if node.result else 0
    for host, why in sorted(node.lost.items()):
        echo(f"{host}: left to the other nodes: {why}", err=True)
    if node.database_lost:
        echo(f"rollout {node.name}: this node lost the ledger and stopped claiming: {node.database_lost}", err=True)
    if node.stalled:
        echo(f"rollout {node.name}: stopped waiting: {node.stalled}", err=True)
    status = node.status
    where = "complete" if status and status.complete else "not complete"
    counts = ", ".join(f"{n} {state}" for state, n in status.to_json()["counts"].items() if n) if status else "unknown"
    echo(
        f"rollout {node.name}: node {node.node} {joined} it and worked on {ran} of {node.hosts_claimable} host(s) "
        f"it could claim; rollout {where} ({counts})"
    )
    if status and not status.complete and not node.database_lost:
        echo(
            f"see it with: ispagent rollout status {node.name} -i INVENTORY; finish it with run ... --rollout {node.name}",
            err=True,
        )
