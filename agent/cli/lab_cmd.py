"""`ispagent lab up|status|down`: parses options, calls agent.lab, prints."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.lab import Lab, labs_on_machine
from agent.lab.profiles import PROFILES

DEFAULT_DIR = Path("lab")

dir_option = click.option(
    "--dir", "lab_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DIR,
    show_default=True, help="Directory holding the lab's state, host disks, key and inventory.",
)


def _progress(message: str) -> None:
    echo(f"lab: {message}", err=True)


@click.group()
def lab() -> None:
    """A local lab of Debian 12 servers in network namespaces, for tests and demos.

    Each host is its own network, mount, UTS and PID namespace on the lab's bridge, with sshd as
    PID 1 and an ed25519 host key. Needs root. Labs in different directories run side by side,
    each in a slot of its own: bridge ispagentK, addresses 198.18.(8K).0/21, its own services.
    """


@lab.command()
@click.option("--hosts", "-n", type=click.IntRange(1, 1000), required=True,
              help="How many hosts the lab should have (h1..hN).")
@click.option("--profile", "profile_options", multiple=True, metavar="HOST=PROFILE",
              help="Put a host in a situation the installer meets (repeatable): "
                   f"{', '.join(PROFILES)} (docs/lab.md says what each does).")
@dir_option
def up(hosts: int, lab_dir: Path, profile_options: tuple[str, ...]) -> None:
    """Bring the lab to exactly N running hosts and wait until each accepts SSH.

    Running hosts are left alone, dead ones restarted, hosts beyond N removed. The first run on a
    machine builds the Debian 12 rootfs with debootstrap (about a minute; mirror from
    $ISPAGENT_DEBIAN_MIRROR) and caches it in /var/cache/ispagent/.

    \b
    Writes into DIR: id_ed25519 (+.pub), known_hosts, ssh_config, inventory.yaml.
    Then: ssh -F DIR/ssh_config h1   or   ispagent run -i DIR/inventory.yaml ...
    """
    from agent.lab.profiles import parse_profile_options

    result = Lab(lab_dir).up(hosts, progress=_progress, profiles=parse_profile_options(profile_options))
    kept = len(result.hosts) - len(result.started)
    stopped = f", {len(result.stopped)} removed" if result.stopped else ""
    echo(
        f"lab up: {len(result.hosts)} hosts ({len(result.started)} started, {kept} already running"
        f"{stopped}) in {result.seconds:.2f} s; inventory: {result.inventory}"
    )


@lab.command()
@click.option("--dir", "lab_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Show the hosts of the lab in this directory.  [default: list the labs on this machine]")
@click.option("--json", "as_json", is_flag=True, help="Print the labs (or hosts) as a JSON list.")
def status(lab_dir: Path | None, as_json: bool) -> None:
    """List the labs up on this machine; with --dir, each host of that lab: address, up or down, and
    pid (the one `down` kills)."""
    if lab_dir is None:
        _machine_status(as_json)
        return
    hosts = Lab(lab_dir).status()
    if as_json:
        echo_json([asdict(host) for host in hosts])
        return
    if not hosts:
        echo(f"no lab in {lab_dir}")
        return
    echo(f"{'HOST':<8} {'ADDRESS':<15} {'STATE':<5} PID")
    for host in hosts:
        state = "up" if host.up else "down"
        echo(f"{host.name:<8} {host.address:<15} {state:<5} {host.pid or '-'}")
    running = sum(host.up for host in hosts)
    echo(f"{running} of {len(hosts)} hosts up")


def _machine_status(as_json: bool) -> None:
    labs = labs_on_machine()
    if as_json:
        echo_json([{**asdict(summary), "dir": summary.dir and str(summary.dir)} for summary in labs])
        return
    if not labs:
        echo("no lab is up on this machine")
        return
    echo(f"{'SLOT':<5} {'BRIDGE':<11} {'NETWORK':<16} {'HOSTS UP':<9} {'OWNER':<16} DIR")
    for summary in labs:
        owner = "-" if summary.owner_pid is None else f"{summary.owner_pid} ({'running' if summary.owner_alive else 'exited'})"
        where = summary.dir or "(no directory recorded: its network was left by hand or by a crash)"
        echo(f"{summary.slot:<5} {summary.bridge:<11} {summary.network:<16} {f'{summary.hosts_up}/{summary.hosts}':<9}"
             f" {owner:<16} {where}")
    echo(f"{len(labs)} labs; take one down with `ispagent lab down --dir DIR`")


@lab.command()
@dir_option
def down(lab_dir: Path) -> None:
    """Stop every host and remove the lab's namespaces, links, mounts and host disks.

    Fails, naming them, if any namespace, veth, mount or process is left afterwards.
    The rootfs cache in /var/cache/ispagent/ is kept.
    """
    result = Lab(lab_dir).down(progress=_progress)
    echo(f"lab down: {len(result.stopped)} hosts stopped in {result.seconds:.2f} s; nothing left")
