"""`ispagent inventory ...` (placeholder until the inventory module lands)."""

import click


@click.group()
def inventory() -> None:
    """Check inventories and make them from other sources."""
