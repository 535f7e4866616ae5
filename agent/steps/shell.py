"""`shell`: run a command on the host, with guards that make it idempotent."""

from __future__ import annotations

from pydantic import model_validator

from agent.runner.context import HostContext
from agent.steps.registry import StepParams, StepResult, changed, failed, ok, skipped, step


class ShellParams(StepParams):
    command: str
    creates: str | None = None  # skip when this path exists on the host
    unless: str | None = None  # skip when this command succeeds on the host
    changes: bool = True  # false for read-only commands: they report ok, and run in --dry-run
    timeout: float | None = None

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.command.strip():
            raise ValueError("command must not be empty")
        return self


@step("shell", ShellParams)
def shell(ctx: HostContext, params: ShellParams) -> StepResult:
    """Run a shell command; `creates`/`unless` skip it when its work is already done."""
    if params.creates and ctx.connection.run(["test", "-e", params.creates]).ok:
        return skipped(f"{params.creates} exists")
    if params.unless and ctx.connection.run(params.unless).ok:
        return skipped("'unless' command succeeded")
    if ctx.dry_run and params.changes:
        return changed(f"would run: {params.command}")
    result = ctx.connection.run(params.command, timeout=params.timeout)
    if not result.ok:
        return failed(f"exit status {result.exit_status}: {result.error_line()}")
    last = result.stdout.strip().splitlines()[-1:] or [""]
    return changed(last[0]) if params.changes else ok(last[0])


