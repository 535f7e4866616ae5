"""`ispagent licenses ...`, `ispagent reconcile`, `ispagent plan` (filled in by the licenses work)."""

import click


@click.group()
def licenses() -> None:
    """Licenses in the partner account: list, show, renew, change IP, suspend, resume, delete."""


@click.command()
def reconcile() -> None:
    """Compare servers, the ledger and the partner account."""
    raise click.UsageError("not implemented yet")


@click.command()
def plan() -> None:
    """Show, per host, whether a license would be adopted, reused or ordered, before any money is spent."""
    raise click.UsageError("not implemented yet")
