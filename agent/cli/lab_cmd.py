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
    "--dir",
    "lab_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Directory holding the lab's state, host disks, key and inventory.",
)

# Not the netns lab's directory: each lab keeps its services' state in its own.
docker_dir_option = click.option(
    "--dir",
    "lab_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("vagrant-lab"),
    show_default=True,
    help="Directory holding dockerd's socket and data, the services' state, env and vars.yaml.",
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
@click.option(
    "--hosts", "-n", type=click.IntRange(1, 1000), required=True, help="How many hosts the lab should have (h1..hN)."
)
@click.option(
    "--profile",
    "profile_options",
    multiple=True,
    metavar="HOST=PROFILE",
    help="Put a host in a situation the installer meets (repeatable): "
    f"{', '.join(PROFILES)} (docs/lab.md says what each does).",
)
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
@click.option(
    "--dir",
    "lab_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Show the hosts of the lab in this directory.  [default: list the labs on this machine]",
)
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
        owner = (
            "-"
            if summary.owner_pid is None
            else f"{summary.owner_pid} ({'running' if summary.owner_alive else 'exited'})"
        )
        where = summary.dir or "(no directory recorded: its network was left by hand or by a crash)"
        echo(
            f"{summary.slot:<5} {summary.bridge:<11} {summary.network:<16} {f'{summary.hosts_up}/{summary.hosts}':<9}"
            f" {owner:<16} {where}"
        )
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


@lab.group("docker")
def docker_lab() -> None:
    """The docker side of a Vagrant test lab: `vagrant up --provider=docker` on this machine.

    \b
        ispagent lab docker up --dir vlab && . vlab/env
        cd vagrant && vagrant up --provider=docker
        vagrant ssh-config | ispagent inventory from-vagrant --domain lab.ispagent.test \\
            --vars ../vlab/vars.yaml -o lab.yaml
        ispagent run ../playbooks/install.yaml -i lab.yaml
        vagrant destroy -f && ispagent lab docker down --dir ../vlab

    Our own dockerd (Debian's docker.io: private socket and data root under DIR/docker, storage
    driver vfs, no iptables, bridge ispdock0 at 198.19.0.1/24), the lab's installer mirror and
    partner emulator on that address, and the box image made offline from the lab's rootfs.
    """


@docker_lab.command("up")
@docker_dir_option
def docker_up(lab_dir: Path) -> None:
    """Start dockerd and the lab's services, build the box image; each unless it is there.

    Writes DIR/env (source it before running vagrant) and DIR/vars.yaml (inventory vars).
    """
    from agent.lab.vagrant_docker import VagrantDockerLab

    result = VagrantDockerLab(lab_dir).up(progress=_progress)
    image = "built" if result.built_image else "already there"
    echo(
        f"lab docker up in {result.seconds:.2f} s (image {image}); next: . {result.env_file}"
        f" && vagrant up --provider=docker"
    )


@docker_lab.command("down")
@docker_dir_option
def docker_down(lab_dir: Path) -> None:
    """Remove any container left, stop the services and dockerd, remove the bridge.

    Fails, naming it, if anything is left afterwards. Run `vagrant destroy` first: containers
    removed here are not known to Vagrant as gone until it next looks.
    """
    from agent.lab.vagrant_docker import VagrantDockerLab

    removed = VagrantDockerLab(lab_dir).down(progress=_progress)
    echo(f"lab docker down: {len(removed)} containers removed; nothing left")
