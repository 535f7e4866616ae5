"""The step registry: a step is a function marked with @step under a name, with a model of its parameters.

A new step is a new module in `agent/steps/` named after the step, or a function another package
publishes under the entry-point group `ispagent.steps`; a StepRegistry finds both, so nothing else has
to change to add one. Each run's playbook is read with a registry of its own: no process-wide table.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agent.errors import StepRegistryError
from agent.hoststate import StateKey

# Steps import their parameter base from here, with the rest of a step's vocabulary.
from agent.runner.params import NoParams as NoParams
from agent.runner.params import ParamsModel, params_model
from agent.runner.params import StepParams as StepParams

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from agent.runner.context import HostContext

STEPS_PACKAGE = "agent.steps"  # one module per step, named after it
ENTRY_POINT_GROUP = "ispagent.steps"  # third-party steps
Status = Literal["ok", "changed", "skipped", "failed"]


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
MarkedFunction = TypeVar("MarkedFunction", bound=Callable[..., StepResult])


@dataclass(frozen=True)
class StepType:
    name: str
    function: StepFunction
    params: ParamsModel  # a StepParams subclass, or a published step's pydantic model
    read_only: bool  # changes nothing on the host
    rerun_on_resume: bool  # its output feeds later steps: a resumed run does it again
    uses_account: bool  # calls the partner account: the run reads its credentials before any host
    summary: str
    provides: tuple[StateKey[Any], ...] = ()  # host state it sets for later steps
    needs: tuple[StateKey[Any], ...] = ()  # host state it cannot work without: a step before it must provide it
    idempotent: bool = False  # done again, it changes nothing the first time did not (it checks before it writes)


def step(
    name: str,
    params: type[StepParams] | type[Any] = NoParams,
    *,
    read_only: bool = False,
    rerun_on_resume: bool | None = None,
    uses_account: bool = False,
    provides: tuple[StateKey[Any], ...] = (),
    needs: tuple[StateKey[Any], ...] = (),
    idempotent: bool = False,
) -> Callable[[MarkedFunction], MarkedFunction]:
    """Mark the decorated function as the step `name` taking `params`; a StepRegistry finds it.

    On `run --resume`, a step that finished is not done again unless it is read-only or
    `rerun_on_resume` (it fills `HostContext.state` for later steps; it must be idempotent).
    `idempotent`: done again, it changes nothing (a file it writes only when it differs); the host
    then goes on without waiting for the journal to have its end on disk, since a crash that
    loses the end only makes a resumed run do it again.
    """
    rerun = read_only if rerun_on_resume is None else rerun_on_resume

    def mark(function: MarkedFunction) -> MarkedFunction:
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        # Through __dict__: a Callable type declares no step_type, and the function keeps its own type.
        function.__dict__["step_type"] = StepType(
            name,
            function,
            params_model(params),
            read_only,
            rerun,
            uses_account,
            summary,
            tuple(provides),
            tuple(needs),
            idempotent,
        )
        return function

    return mark


class StepRegistry:
    """The steps a run can use: `agent.steps` (one module per step, named after it) and the steps
    other packages publish under the entry-point group `ispagent.steps` (name = step name, value =
    `module:function` of a function marked with @step)."""

    def __init__(self, package: str = STEPS_PACKAGE, entry_point_group: str = ENTRY_POINT_GROUP) -> None:
        self.package = package
        self.entry_point_group = entry_point_group
        self._steps: dict[str, StepType] = {}
        self._everything_loaded = False

    def load(self, names: Iterable[str] | None = None) -> dict[str, StepType]:
        """The known steps: at least those named, or all of them.

        Importing only what a playbook uses keeps start-up short: the license steps pull in the
        database layer. A name with no module of its own (a typo, or a
        third-party step) loads everything, so an error can list every known step.
        """
        if names is not None and all(self._load_own(name) for name in names):
            return dict(self._steps)
        self._load_everything()
        return dict(self._steps)

    def _load_own(self, name: str) -> bool:
        if name in self._steps:
            return True
        if not name.isidentifier():
            return False
        module = f"{self.package}.{name}"
        try:
            self._add_module(importlib.import_module(module))
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            return False
        return name in self._steps

    def _load_everything(self) -> None:
        if self._everything_loaded:
            return
        package = importlib.import_module(self.package)  # plug-ins, found at run time: steps sit above the runner
        for module in pkgutil.iter_modules(package.__path__):
            self._add_module(importlib.import_module(f"{self.package}.{module.name}"))
        # Imported here, not above: a playbook of built-in steps, the common case, does not pay its
        # 6 ms of CPU before the run dials.
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=self.entry_point_group):
            self._add(_published_step(entry_point), f"entry point {entry_point.value}")
        self._everything_loaded = True

    def _add_module(self, module: ModuleType) -> None:
        for value in vars(module).values():
            step_type = getattr(value, "step_type", None)
            if isinstance(step_type, StepType) and getattr(value, "__module__", None) == module.__name__:
                self._add(step_type, module.__name__)

    def _add(self, step_type: StepType, source: str) -> None:
        known = self._steps.get(step_type.name)
        if known is not None and known.function is not step_type.function:
            raise StepRegistryError(
                f"step {step_type.name!r} is defined twice: in {known.function.__module__} and {source}"
            )
        self._steps[step_type.name] = step_type


def _published_step(entry_point: EntryPoint) -> StepType:
    try:
        function = entry_point.load()
    except Exception as error:
        raise StepRegistryError(f"step {entry_point.name!r} ({entry_point.value}) cannot be loaded: {error}") from None
    step_type = getattr(function, "step_type", None)
    if not isinstance(step_type, StepType) or step_type.name != entry_point.name:
        raise StepRegistryError(
            f"entry point {entry_point.name!r} ({entry_point.value}) is not a function marked "
            f"@step({entry_point.name!r})"
        )
    return step_type


def load_steps(names: Iterable[str] | None = None) -> dict[str, StepType]:
    """The steps of a new registry: those named, or all of them."""
    return StepRegistry().load(names)
