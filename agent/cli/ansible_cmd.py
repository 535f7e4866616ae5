"""`ispagent inventory from-ansible`: our inventory from an Ansible one (needs the ansible extra)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.atomicfile import check_output_path, write_output
from agent.cli.output import echo
from agent.errors import InputError
from agent.inventory.loader import check_made_inventory


@click.command("from-ansible")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the inventory here instead of stdout.",
)
@click.option(
    "--known-hosts",
    metavar="FILE",
    default="~/.ssh/known_hosts",
    show_default=True,
    help="The inventory's ssh.known_hosts.",
)
@click.option("--host-key-policy", type=click.Choice(["strict", "accept-new"]), default="strict", show_default=True)
@click.option(
    "--vault-password-file",
    metavar="FILE",
    type=click.Path(path_type=Path),
    envvar="ANSIBLE_VAULT_PASSWORD_FILE",
    help="The vault password (a plain file, as ansible-playbook takes it) for !vault vars.",
)
def from_ansible(
    source: Path, output: Path | None, known_hosts: str, host_key_policy: str, vault_password_file: Path | None
) -> None:
    """Make an inventory from an Ansible inventory SOURCE (INI or YAML file, or a directory).

    \b
        pip install 'ispagent[ansible]'
        ispagent inventory from-ansible /etc/ansible/hosts -o fleet.yaml
        ispagent inventory check -i fleet.yaml

    ansible-core's own parser reads SOURCE with its group_vars/ and host_vars/. ansible_host,
    ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_become become address,
    port, user, identity_file and sudo; groups keep their members; vars every host shares go to
    defaults.vars. Other ansible_* vars are listed on stderr (and in the file) as left out.
    !vault vars are decrypted with --vault-password-file. The inventory must pass `inventory check`
    to be written; one that holds a secret (a vault value, a password, an activation key) is
    written only to a file (-o), mode 0600.
    """
    from agent.inventory.ansible import convert, read_ansible_inventory

    hosts, groups = read_ansible_inventory(source, vault_password_file)
    base = source.parent if source.is_file() else source
    result = convert(
        hosts,
        groups,
        source=str(source),
        known_hosts=known_hosts,
        host_key_policy=host_key_policy,
        base_dir=base.absolute(),
    )
    if output is None and result.secret:
        raise InputError(
            f"{source}: the inventory made from it holds secrets (vault values, passwords or keys), "
            "which ispagent never prints: write it to a file with -o FILE (made 0600)"
        )
    if output is not None:
        check_output_path(output, "inventory")  # before the work: a FIFO or a link there is refused at once
    check_made_inventory(result.text, str(source))
    if output is None:
        echo(result.text, nl=False)
    else:
        write_output(output, result.text, "inventory", secret=result.secret)
    # After the write: a write that fails is its one error line, not the last of the notes.
    for note in result.notes:
        echo(f"ispagent: left out {note}", err=True)
    if output is not None:
        secret = ", mode 0600: it holds secrets" if result.secret else ""
        echo(f"wrote {output} ({result.hosts} hosts{secret})", err=True)
