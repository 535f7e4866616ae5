"""`shell`: run a command on the host, with guards that make it idempotent."""

from __future__ import annotations

from agent.runner.context import HostContext
from agent.runner.registry import StepParams, StepResult, changed, failed, ok, skipped, step
from agent.transport.quoting import command_line


class ShellParams(StepParams):
    command: str
    creates: str | None = None  # skip when this path exists on the host
    unless: str | None = None  # skip when this command succeeds on the host
    changes: bool = True  # false for read-only commands: they report ok, and run in --dry-run
    timeout: float | None = None

    def check(self) -> None:
        if not self.command.strip():
            raise ValueError("command must not be empty")


@step("shell", ShellParams)
def shell(ctx: HostContext, params: ShellParams) -> StepResult:
    """Run a command under the host's /bin/sh; `creates`/`unless` skip it when its work is already done."""
    guard = _guard(params)
    if ctx.dry_run and params.changes:
        if guard and ctx.connection.run(f"{guard}\nexit 1").stdout.strip() == _SKIP:
            return skipped(_skip_reason(params))
        return changed(f"would run: {params.command}")
    # Guard and command go in one round trip: the guard's verdict comes back as a marker line.
    result = ctx.connection.run(f"{guard}\n{params.command}" if guard else params.command, timeout=params.timeout)
    if guard and result.ok and result.stdout.strip() == _SKIP:
        return skipped(_skip_reason(params))
    if not result.ok:
        return failed(f"exit status {result.exit_status}: {result.error_line()}")
    last = result.stdout.strip().splitlines()[-1:] or [""]
    return changed(last[0]) if params.changes else ok(last[0])


_SKIP = "__ispagent_guard_says_done_f3b1c9__"


def _guard(params: ShellParams) -> str:
    """Shell lines that print the skip marker and exit 0 when the guard says the work is done."""
    tests = []
    if params.creates:
        tests.append(f"[ -e {command_line([params.creates])} ]")
    if params.unless:
        tests.append(f"( {params.unless}\n) >/dev/null 2>&1 </dev/null")
    if not tests:
        return ""
    return f"if {' || '.join(tests)}; then echo {_SKIP}; exit 0; fi"


def _skip_reason(params: ShellParams) -> str:
    return f"{params.creates} exists" if params.creates else "'unless' command succeeded"
