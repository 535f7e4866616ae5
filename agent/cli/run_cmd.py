"""`ispagent run` (placeholder until the runner lands)."""

import click


@click.command()
def run() -> None:
    """Run a playbook over the hosts of an inventory."""
