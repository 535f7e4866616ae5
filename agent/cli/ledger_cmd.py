"""`ispagent ledger import|export`: the ledger's billing history as CSV (agent/economics/billing_csv.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.options import economics_context, economics_options
from agent.cli.output import echo


@click.group()
def ledger() -> None:
    """The ledger's billing history: import it from another billing system, export it."""


@ledger.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@economics_options
def import_csv(csv_file, inventory, ledger_at, program_file, today) -> None:
    """Import billing events from CSV (date,license_id,edition,period,kind,price): all rows or none.

    Rows the ledger already holds are left out, so importing a file twice, or a newer export that
    repeats older months, imports only what is new.

    kind: activation, renewal, deactivation or payment; price: the list price in EUR if known (a
    payment: the amount paid). Every row is checked first; an error names its line.
    """
    from agent.economics.billing_csv import import_billing_csv

    opened, _, day = economics_context(inventory, ledger_at, program_file, today)
    read = import_billing_csv(opened, csv_file, day)
    skipped = f" ({read.already_recorded} already in the ledger, left out)" if read.already_recorded else ""
    echo(f"imported {read.imported} event(s) from {csv_file} into {opened.shown}{skipped}")


@ledger.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@economics_options
def export_csv(output, inventory, ledger_at, program_file, today) -> None:
    """Write every billing event as CSV, in the format `ledger import` reads."""
    from agent.economics.billing_csv import write_billing_csv

    opened, _, _ = economics_context(inventory, ledger_at, program_file, today)
    if output is None:
        write_billing_csv(opened, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        count = write_billing_csv(opened, handle)
    echo(f"exported {count} event(s) to {output}", err=True)
