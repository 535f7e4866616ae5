"""`ispagent inventory ...`: check an inventory, or make one from `vagrant ssh-config`."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.output import echo, echo_json
from agent.errors import InputError
from agent.inputfile import decode_input
from agent.inventory.loader import load_inventory
from agent.inventory.summary import TABLE_COLUMNS, inventory_summary, table_row
from agent.inventory.vagrant import (
    check_vagrant_inventory,
    parse_vagrant_ssh_config,
    read_vars_file,
    vagrant_inventory_yaml,
    write_inventory_file,
)


@click.group()
def inventory() -> None:
    """Check inventories and make them from other sources."""


@inventory.command()
@click.option(
    "-i", "--inventory", "inventory_path", required=True, metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Inventory YAML to check (`ispagent init DIR` writes a commented example).",
)  # fmt: skip
@click.option(
    "--ssh-config", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False),
    help="ssh client config to honour instead of ~/.ssh/config (e.g. /dev/null for none).",
)  # fmt: skip
@click.option(
    "-l", "--limit", metavar="PATTERNS", help="Show only these hosts: names, groups or globs, comma-separated."
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (secrets masked) instead of a table.")
def check(inventory_path: Path, ssh_config: Path | None, limit: str | None, as_json: bool) -> None:
    """Load an inventory, check everything, and show each host as ispagent will see it.

    Nothing is contacted. Connection settings are shown after merging the host's own keys,
    ~/.ssh/config and defaults; vars after merging defaults, groups and the host.
    activation_key is always shown as ***. Exits 2 with one line naming file, line, key
    and fix when the inventory has a problem.
    """
    loaded = load_inventory(inventory_path, ssh_config=ssh_config)
    hosts = loaded.select(limit)
    if as_json:
        echo_json(inventory_summary(loaded, hosts))
        return
    echo(_table([TABLE_COLUMNS, *(table_row(host) for host in hosts)]))
    echo(
        f"{len(hosts)} of {len(loaded.hosts)} hosts, {_count(len(loaded.groups), 'group')}; "
        f"host keys: {loaded.ssh.host_key_policy}, {loaded.ssh.known_hosts}"
    )


@inventory.command("from-vagrant")
@click.option(
    "-i", "--input", "source", metavar="FILE", type=click.File("rb"), default="-", show_default=True,
    help="Saved output of `vagrant ssh-config`; - reads stdin.",
)  # fmt: skip
@click.option(
    "-o", "--output", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False),
    help="Write the inventory here instead of stdout.",
)  # fmt: skip
@click.option(
    "--known-hosts", metavar="FILE", default="known_hosts.vagrant", show_default=True,
    help="known_hosts file for the lab's host keys, relative to the inventory's directory.",
)  # fmt: skip
@click.option("--domain", metavar="DOMAIN", help="Set each host's vars.fqdn to <machine>.<DOMAIN>.")
@click.option(
    "--vars", "vars_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False),
    help="YAML mapping of vars for defaults.vars (`ispagent lab docker up` writes one: DIR/vars.yaml).",
)  # fmt: skip
def from_vagrant(source, output: Path | None, known_hosts: str, domain: str | None, vars_file: Path | None) -> None:
    """Make an inventory from `vagrant ssh-config` output.

    \b
        cd vagrant && vagrant up
        vagrant ssh-config | ispagent inventory from-vagrant --domain lab.ispagent.test -o lab.yaml
        ispagent inventory check -i lab.yaml

    Hosts are reached as Vagrant reports them (127.0.0.1 and a forwarded port, user vagrant with
    sudo, Vagrant's per-machine key). Vagrant boxes get new host keys on every `vagrant up`, so
    the inventory uses host_key_policy accept-new with its own known_hosts file. With -o, that
    file forgets the keys it holds for these machines' addresses and ports: run from-vagrant after
    each `vagrant up`, and the new keys are taken on first contact. (Any other changed key is
    still refused.)
    """
    name = getattr(source, "name", "<stdin>")
    text = decode_input(source.read(), name, InputError, what="`vagrant ssh-config` output")
    machines = parse_vagrant_ssh_config(text, name)
    defaults_vars = read_vars_file(vars_file) if vars_file else None
    text = vagrant_inventory_yaml(machines, known_hosts=known_hosts, domain=domain, defaults_vars=defaults_vars)
    check_vagrant_inventory(text, name)
    if output is None:
        echo(text, nl=False)
        return
    write_inventory_file(output, text)
    echo(f"wrote {output} ({len(machines)} hosts)", err=True)
    # Imported here: it brings paramiko, which `inventory check` and --help do without.
    from agent.transport.hostkeys import forget_hosts, known_hosts_name

    known_hosts_path = output.parent / Path(known_hosts).expanduser()
    forgotten = forget_hosts(known_hosts_path, {known_hosts_name(m.address, m.port) for m in machines})
    if forgotten:
        echo(f"forgot {forgotten} old host keys of these machines in {known_hosts_path}", err=True)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
