"""`ispagent inventory from-ansible`: our inventory from an Ansible one (needs the ansible extra)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.output import echo


@click.command("from-ansible")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the inventory here instead of stdout.")
@click.option("--known-hosts", metavar="FILE", default="~/.ssh/known_hosts", show_default=True,
              help="The inventory's ssh.known_hosts.")
@click.option("--host-key-policy", type=click.Choice(["strict", "accept-new"]), default="strict", show_default=True)
def from_ansible(source: Path, output: Path | None, known_hosts: str, host_key_policy: str) -> None:
    """Make an inventory from an Ansible inventory SOURCE (INI or YAML file, or a directory).

    \b
        pip install 'ispagent[ansible]'
        ispagent inventory from-ansible /etc/ansible/hosts -o fleet.yaml
        ispagent inventory check -i fleet.yaml

    ansible-core's own parser reads SOURCE with its group_vars/ and host_vars/. ansible_host,
    ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_become become address,
    port, user, identity_file and sudo; groups keep their members; vars every host shares go to
    defaults.vars. Other ansible_* vars are listed on stderr (and in the file) as left out.
    """
    from agent.inventory.ansible import convert, read_ansible_inventory

    hosts, groups = read_ansible_inventory(source)
    base = source.parent if source.is_file() else source
    result = convert(hosts, groups, source=str(source), known_hosts=known_hosts, host_key_policy=host_key_policy,
                     base_dir=base.absolute())
    for note in result.notes:
        echo(f"ispagent: left out {note}", err=True)
    if output is None:
        echo(result.text, nl=False)
        return
    output.write_text(result.text, encoding="utf-8")
    echo(f"wrote {output} ({result.hosts} hosts)", err=True)
