"""`ispagent lab ...` (placeholder until the lab module lands)."""

import click


@click.group()
def lab() -> None:
    """A local lab of Debian 12 servers in network namespaces, for tests and demos."""
