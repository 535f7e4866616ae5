"""The `ispagent` command: parses options, calls the library, prints. No work is done here."""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import sys
import threading
import types
from typing import Any

import click

from agent import __version__
from agent.cli.output import echo, error_line
from agent.errors import IspagentError
from agent.secrets import printable

EXIT_INTERRUPTED = 130
# Click quotes whole arguments in its usage errors ("Got unexpected extra arguments (...)"): a 5000-character
# word made a 5000-character error line.
USAGE_ERROR_LIMIT = 300


def _cut(message: str) -> str:
    return message if len(message) <= USAGE_ERROR_LIMIT else message[: USAGE_ERROR_LIMIT - 1] + "…"


class IspagentGroup(click.Group):
    """Turns expected failures into one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IspagentError as error:
            echo(error_line(error), err=True)
            ctx.exit(error.exit_code)
        except click.ClickException as error:  # click's own usage errors echo option values too
            error.message = _cut(printable(error.message, one_line=True))
            raise
        except KeyboardInterrupt:
            echo("ispagent: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(_load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=IspagentGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ispagent")
def cli() -> None:
    """Roll out licensed ISPmanager 6 panels to many servers over SSH.

    \b
    Exit codes: 0 all hosts ok, 1 some hosts failed, 2 bad usage or input,
    3 run aborted (fail threshold or lock held), 4 activations not yet
    confirmed by the partner account, 130 interrupted.
    """


# Each command's module is imported only when that command runs (or --help lists it), so
# `ispagent --version` and `inventory check` do not pay for paramiko, the runner or SQLAlchemy.
COMMANDS: dict[str, str] = {
    "inventory": "agent.cli.inventory_cmd:inventory",
    "init": "agent.cli.init_cmd:init",
    "lab": "agent.cli.lab_cmd:lab",
    "run": "agent.cli.run_cmd:run",
    "runs": "agent.cli.runs_cmd:runs",
    "demo": "agent.cli.demo_cmd:demo",
    "licenses": "agent.cli.licenses_cmd:licenses",
    "reconcile": "agent.cli.reconcile_cmd:reconcile",
    "plan": "agent.cli.plan_cmd:plan",
    "schedule": "agent.cli.schedule_cmd:schedule",
    "turnover": "agent.cli.turnover_cmd:turnover",
    "forecast": "agent.cli.forecast_cmd:forecast",
    "ledger": "agent.cli.ledger_cmd:ledger",
    "rollout": "agent.cli.rollout_cmd:rollout",
    "rollouts": "agent.cli.rollout_cmd:rollouts",
}


def _load_command(name: str) -> click.Command:
    module_name, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if name == "inventory" and "from-ansible" not in command.commands:
        from agent.cli.ansible_cmd import from_ansible

        command.add_command(from_ansible)
    return command


def main(obj: dict | None = None) -> None:
    """The `ispagent` command. A program embedding it passes `obj`, e.g. {"journal_watch": ...} (run_cmd.py)."""
    # `import httpx` imports its own command-line client (httpx._main: rich, pygments, click's
    # formatting) whenever those happen to be installed, as they are beside ispagent: 35 ms of CPU on
    # every run that talks to the partner account. This process never runs httpx's CLI; marking the
    # module absent makes httpx define its stub instead (it catches the ImportError for that).
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None in sys.modules: not importable
    # `import paramiko` imports invoke whenever it is installed (the fabric extra), for one use: running
    # an ssh config's `Match exec` command. That is 40-50 ms of CPU (invoke, unittest.mock, asyncio) on
    # every run; deferred, invoke loads at its first use instead (`Match exec`, fabric).
    _defer_until_used("invoke")
    try:
        cli(prog_name="ispagent", obj=obj)
    except SystemExit as done:
        exit_without_teardown(done.code)


class _Deferred(types.ModuleType):
    """Stands in sys.modules for a package not imported yet: the first attribute asked of it imports
    the package and puts it in its place. (importlib.util.LazyLoader does not serve: on Python 3.11
    an `import` statement reads `__spec__` of a module found in sys.modules, which loads it.)"""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _defer_until_used(name: str) -> None:
    """Let `import name` cost nothing until the module is used; nothing if it is imported already
    or not installed."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in


def exit_without_teardown(code: int | str | None) -> None:
    """End the process as `sys.exit(code)` would, but without the interpreter's teardown of every
    module and object, which cost 0.05-0.1 s after each command (paramiko's modules alone 40 ms):
    a twentieth of a 50-host run, more than `--version` itself.

    What the teardown would do that matters is done first, in the same order: other threads still
    running (not daemons) are waited for, atexit handlers run (logging's flush, weakref finalizers,
    temporary directories), stdout and stderr are flushed. Every file a command writes is closed
    (journals and ledgers also fsynced) before the command returns.
    """
    if isinstance(code, str):
        echo(code, err=True)
        code = 1
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
    except KeyboardInterrupt:  # a second Ctrl-C while hosts finish their commands: stop waiting
        code = EXIT_INTERRUPTED
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), or a closed stream
            code = code or 1
    os._exit(code or 0)


if __name__ == "__main__":
    sys.exit(main())
