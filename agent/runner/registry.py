"""The step registry: a step is a function registered under a name, with a model of its parameters.

A new step is a new module in `agent/steps/` named after the step; `load_steps` finds it there, so nothing
else has to change to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from agent.runner.context import HostContext

STEPS_PACKAGE = "agent.steps"  # one module per step, named after it
Status = Literal["ok", "changed", "skipped", "failed"]


class StepParams(BaseModel):
    """Base of every step's parameters: unknown keys are typos, and typos are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def local_files(self) -> dict[str, str]:
        """Parameter name -> local file it names; the playbook loader checks they exist."""
        return {}


class NoParams(StepParams):
    pass


@dataclass(frozen=True)
class StepResult:
    status: Status
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # e.g. gathered facts, a dry-run diff

    @property
    def changed(self) -> bool:
        return self.status == "changed"


def ok(message: str = "", **data: Any) -> StepResult:
    return StepResult("ok", message, data)


def changed(message: str = "", **data: Any) -> StepResult:
    return StepResult("changed", message, data)


def skipped(message: str = "", **data: Any) -> StepResult:
    return StepResult("skipped", message, data)


def failed(message: str, **data: Any) -> StepResult:
    return StepResult("failed", message, data)


StepFunction = Callable[["HostContext", Any], StepResult]


@dataclass(frozen=True)
class StepType:
    name: str
    function: StepFunction
    params: type[StepParams]
    read_only: bool  # changes nothing on the host
    rerun_on_resume: bool  # its output feeds later steps: a resumed run does it again
    uses_account: bool  # calls the partner account: the run reads its credentials before any host
    summary: str


_REGISTRY: dict[str, StepType] = {}


def step(
    name: str,
    params: type[StepParams] = NoParams,
    *,
    read_only: bool = False,
    rerun_on_resume: bool | None = None,
    uses_account: bool = False,
):
    """Register the decorated function as the step `name` taking `params`.

    On `run --resume`, a step that finished is not done again unless it is read-only or
    `rerun_on_resume` (it fills `HostContext.state` for later steps; it must be idempotent).
    """
    rerun = read_only if rerun_on_resume is None else rerun_on_resume

    def register(function: StepFunction) -> StepFunction:
        if name in _REGISTRY:
            raise RuntimeError(f"step {name!r} registered twice")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        _REGISTRY[name] = StepType(name, function, params, read_only, rerun, uses_account, summary)
        return function

    return register


def load_steps(names: Iterable[str] | None = None) -> dict[str, StepType]:
    """The registered steps: those named (each lives in the module of its name), or all of them.

    Importing only what a playbook uses keeps start-up short: the license steps pull in the
    database layer, verify pulls in testinfra. A name with no module of its own (a typo) loads
    every module, so the error can list every known step.
    """
    if names is not None and all(_import_step_module(name) for name in names):
        return dict(_REGISTRY)
    package = importlib.import_module(STEPS_PACKAGE)  # plug-ins, found at run time: steps sit above the runner
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{STEPS_PACKAGE}.{module.name}")
    return dict(_REGISTRY)


def _import_step_module(name: str) -> bool:
    if name in _REGISTRY:
        return True
    if not name.isidentifier():
        return False
    module = f"{STEPS_PACKAGE}.{name}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return False
    return name in _REGISTRY
