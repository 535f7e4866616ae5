"""`ispagent init DIR`: an inventory, the playbooks and the templates to edit, from what ispagent ships."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from agent.cli.output import echo


@click.command()
# Plain text, not click.Path: that stats the value first, and a NUL in it (a caller's, not a shell's) would
# be a traceback instead of write_project_dir's one line.
@click.argument("directory", metavar="DIR")
def init(directory: str) -> None:
    """Write DIR/inventory.yaml, DIR/playbooks/ and DIR/templates/ to edit.

    \b
    DIR must be new or empty: nothing is overwritten. The inventory is the
    commented example (every key explained); the playbooks are the shipped
    ones (install, reprovision, audit, decommission, ...), and a playbook run
    from DIR/playbooks/ uses DIR/templates/ before the shipped templates.
    """
    from agent.projectdir import write_project_dir
    from agent.secrets import shown

    made = write_project_dir(Path(directory))
    playbooks = sum(1 for path in made.files if path.parts[0] == "playbooks" and path.suffix == ".yaml")
    templates = sum(1 for path in made.files if path.parts[0] == "templates")
    echo(f"init: wrote {shown(directory)}: inventory.yaml, {playbooks} playbooks, {templates} templates")
    # Commands to copy: the directory as the shell needs it, or DIR when it cannot be shown as typed.
    word = shlex.quote(directory) if shown(directory) == f"'{directory}'" else "DIR"
    echo(
        f"next: edit {word}/inventory.yaml, then\n"
        f"  ispagent inventory check -i {word}/inventory.yaml\n"
        f"  ispagent run {word}/playbooks/install.yaml -i {word}/inventory.yaml --dry-run"
    )
