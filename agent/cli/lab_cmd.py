"""`ispagent lab up|status|down`: parses options, calls agent.lab, prints."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.lab import Lab
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

    Each host is its own network, mount, UTS and PID namespace on a bridge in 198.18.0.0/16,
    with sshd as PID 1 and an ed25519 host key. Needs root. One lab per machine at a time.
    """


@lab.command()
@click.option("--hosts", "-n", type=click.IntRange(1, 1000), required=True,
              help="How many hosts the lab should have (h1..hN).")
@click.option("--profile", "profile_options", multiple=True, metavar="HOST=PROFILE",
              help="Put a host in a situation the installer meets (repeatable): "
                   f"{', '.join(PROFILES)} (the README's lab section says what each does).")
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
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the hosts as a JSON list.")
def status(lab_dir: Path, as_json: bool) -> None:
    """Show each host of the lab: address, up or down, and pid (the one `down` kills)."""
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


@lab.command()
@dir_option
def down(lab_dir: Path) -> None:
    """Stop every host and remove the lab's namespaces, links, mounts and host disks.

    Fails, naming them, if any namespace, veth, mount or process is left afterwards.
    The rootfs cache in /var/cache/ispagent/ is kept.
    """
    result = Lab(lab_dir).down(progress=_progress)
    echo(f"lab down: {len(result.stopped)} hosts stopped in {result.seconds:.2f} s; nothing left")
