"""The `ispagent` command: parses options, calls the library, prints. No work is done here."""

from __future__ import annotations

import sys

import click

from agent import __version__
from agent.cli.output import echo, error_line
from agent.errors import IspagentError
from agent.secrets import printable

EXIT_INTERRUPTED = 130


class IspagentGroup(click.Group):
    """Turns expected failures into one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IspagentError as error:
            echo(error_line(error), err=True)
            ctx.exit(error.exit_code)
        except click.ClickException as error:  # click's own usage errors echo option values too
            error.message = printable(error.message, one_line=True)
            raise
        except KeyboardInterrupt:
            echo("ispagent: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=IspagentGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ispagent")
def cli() -> None:
    """Roll out licensed ISPmanager 6 panels to many servers over SSH.

    \b
    Exit codes: 0 all hosts ok, 1 some hosts failed, 2 bad usage or input,
    3 run aborted (fail threshold or lock held), 4 activations not yet
    confirmed by the partner account, 130 interrupted.
    """


def _register_commands() -> None:
    from agent.cli import (
        ansible_cmd,
        demo_cmd,
        forecast_cmd,
        inventory_cmd,
        lab_cmd,
        ledger_cmd,
        licenses_cmd,
        plan_cmd,
        reconcile_cmd,
        run_cmd,
        runs_cmd,
        schedule_cmd,
        turnover_cmd,
    )

    cli.add_command(inventory_cmd.inventory)
    inventory_cmd.inventory.add_command(ansible_cmd.from_ansible)
    cli.add_command(lab_cmd.lab)
    cli.add_command(run_cmd.run)
    cli.add_command(runs_cmd.runs)
    cli.add_command(demo_cmd.demo)
    cli.add_command(licenses_cmd.licenses)
    cli.add_command(reconcile_cmd.reconcile)
    cli.add_command(plan_cmd.plan)
    cli.add_command(schedule_cmd.schedule)
    for command in (turnover_cmd.turnover, forecast_cmd.forecast, ledger_cmd.ledger):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="ispagent")


if __name__ == "__main__":
    sys.exit(main())
