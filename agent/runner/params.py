"""A step's parameters: typed fields a playbook sets, read as pydantic's lax mode reads them.

A step's parameter class lists its fields as annotated class attributes (a default makes one
optional) and subclasses StepParams; a playbook's mapping becomes an instance, frozen, or a
ParamsError that names the first problem as pydantic did: the fields in order (missing, then not
readable), then keys no field has, then the class's own `check()`.

Not a pydantic model, for the run's start-up: importing pydantic and building the validators of a
playbook's step models cost about 55 ms of CPU, the largest part of what `ispagent run` of a small
job costs beyond the paramiko script that does the same work. The field types a step needs are
few: str, bool, float, a Literal of strings, those or None, and `Annotated[T, ReadWith(f)]` for
anything else (f reads the raw value: a file mode's octal string, say). A step published by another
package may still take a pydantic model as its parameters (`PydanticParams`): pydantic is imported
with that step.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from agent import laxvalues
from agent.errors import StepRegistryError

Reader = Callable[[Any], Any]
ProblemKind = Literal["unknown", "missing", "invalid"]
Params = TypeVar("Params", bound="StepParams")


NO_VALUE: Any = object()  # a problem with no one value to show: a missing field, the mapping as a whole


class ParamsError(ValueError):
    """The first problem with a step's parameters: where (`loc`, empty for the mapping as a whole),
    what kind, the text, and the value refused (NO_VALUE when there is none to show)."""

    def __init__(self, loc: tuple[Any, ...], kind: ProblemKind, message: str, value: Any = NO_VALUE) -> None:
        super().__init__(message)
        self.loc, self.kind, self.message, self.value = loc, kind, message, value


class ParamField:
    """One parameter: its name, its annotation, its default (`required` when it has none), its reader."""

    __slots__ = ("name", "annotation", "default", "required", "read")

    def __init__(self, name: str, annotation: Any, default: Any, required: bool, read: Reader) -> None:
        self.name, self.annotation, self.default, self.required, self.read = name, annotation, default, required, read


class ReadWith:
    """`Annotated[T, ReadWith(f)]`: the field's value is f(raw value); f raises ValueError to refuse it."""

    __slots__ = ("read",)

    def __init__(self, read: Reader) -> None:
        self.read = read


class ParamsModel(Protocol):
    """What a run needs of a step's parameter class: read a playbook's mapping, and list the fields."""

    def parse(self, values: Mapping[Any, Any]) -> Any: ...

    def fields(self) -> dict[str, ParamField]: ...


class StepParams:
    """Base of every step's parameters: unknown keys are typos, and typos are errors."""

    _param_fields: typing.ClassVar[dict[str, ParamField]]

    def __init__(self, **values: Any) -> None:
        self._fill(values)

    @classmethod
    def parse(cls: type[Params], values: Mapping[Any, Any]) -> Params:
        """An instance from a playbook's mapping; ParamsError names the first problem."""
        made = cls.__new__(cls)
        made._fill(values)
        return made

    @classmethod
    def fields(cls) -> dict[str, ParamField]:
        # Read on first use, not when the class is made: annotations are strings until then, and may
        # name what the module defines after the class.
        if "_param_fields" not in cls.__dict__:
            cls._param_fields = _fields_of(cls)
        return cls._param_fields

    def check(self) -> None:
        """Checks across fields, once each has been read: raise ValueError to refuse the mapping."""

    def local_files(self) -> dict[str, str]:
        """Parameter name -> local file it names; the playbook loader checks they exist."""
        return {}

    def _fill(self, values: Mapping[Any, Any]) -> None:
        fields = type(self).fields()
        for name, field in fields.items():
            if name not in values:
                if field.required:
                    raise ParamsError((name,), "missing", "Field required")
                object.__setattr__(self, name, field.default)
                continue
            try:
                object.__setattr__(self, name, field.read(values[name]))
            except ValueError as error:
                raise ParamsError((name,), "invalid", str(error), values[name]) from None
        for key in values:
            if not isinstance(key, str):  # YAML reads `1: x` and `null: x` as keys too
                raise ParamsError((key,), "invalid", "Keys should be strings", key)
            if key not in fields:
                raise ParamsError((key,), "unknown", "Extra inputs are not permitted", values[key])
        try:
            self.check()
        except ValueError as error:
            raise ParamsError((), "invalid", str(error)) from None

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in type(self).fields())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).fields())
        return f"{type(self).__name__}({shown})"


class NoParams(StepParams):
    pass


def _fields_of(cls: type[StepParams]) -> dict[str, ParamField]:
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if type(value).__module__.startswith("pydantic"):
                raise StepRegistryError(
                    f"{cls.__qualname__}.{name} is a pydantic validator, which StepParams does not run: "
                    "make the parameters a pydantic model (subclass pydantic.BaseModel) or check in check()"
                )
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as error:  # an annotation naming what its module does not define (at run time)
        raise StepRegistryError(f"{cls.__qualname__}: cannot read its fields' types: {error}") from None
    fields = {}
    for name, annotation in hints.items():
        if name.startswith("_") or typing.get_origin(annotation) is typing.ClassVar:
            continue
        if name in _OWN_NAMES:  # its default would be the method
            raise StepRegistryError(f"{cls.__qualname__}.{name}: a parameter cannot be named as a method of StepParams")
        required = not hasattr(cls, name)
        default = None if required else getattr(cls, name)
        bare = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
        fields[name] = ParamField(name, bare, default, required, _reader(cls, name, annotation))
    return fields


_OWN_NAMES = frozenset(name for name in vars(StepParams) if not name.startswith("_"))
_PLAIN: dict[Any, Reader] = {
    str: laxvalues.string,
    bool: laxvalues.boolean,
    float: laxvalues.number,
}


def _reader(cls: type, name: str, annotation: Any) -> Reader:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        marks = [mark for mark in annotation.__metadata__ if isinstance(mark, ReadWith)]
        return marks[-1].read if marks else _reader(cls, name, args[0])
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return laxvalues.optional(_reader(cls, name, rest[0]))
    if origin is Literal and all(isinstance(arg, str) for arg in args):
        return laxvalues.choice(tuple(args))
    if annotation in _PLAIN:
        return _PLAIN[annotation]
    raise StepRegistryError(
        f"{cls.__qualname__}.{name}: StepParams reads str, bool, float, a Literal of strings and "
        f"those or None, not {annotation!r}; give it Annotated[..., ReadWith(reader)] or make the "
        "parameters a pydantic model"
    )


class PydanticParams:
    """A published step's parameters written as a pydantic model, read by pydantic itself."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def parse(self, values: Mapping[Any, Any]) -> Any:
        from pydantic import ValidationError  # imported already: the model is one

        try:
            return self.model.model_validate(values)
        except ValidationError as error:
            problem = error.errors()[0]
            kinds: dict[str, ProblemKind] = {"extra_forbidden": "unknown", "missing": "missing"}
            kind = kinds.get(problem["type"], "invalid")
            message = problem["msg"].removeprefix("Value error, ")
            # A mapping as the value (a check across fields) is passed on like StepParams' own: the
            # playbook's error shows no mapping, whichever reader refused it.
            raise ParamsError(tuple(problem["loc"]), kind, message, problem.get("input", NO_VALUE)) from None

    def fields(self) -> dict[str, ParamField]:
        return {
            info.alias or name: ParamField(
                info.alias or name,
                info.annotation,
                None if info.is_required() else info.get_default(call_default_factory=True),
                info.is_required(),
                lambda value: value,
            )
            for name, info in self.model.model_fields.items()
        }


def params_model(params: Any) -> ParamsModel:
    """The parameter model of a step's parameter class: a StepParams subclass, or a pydantic model."""
    if isinstance(params, type) and issubclass(params, StepParams):
        return params  # its classmethods are the protocol's methods
    if isinstance(params, type) and hasattr(params, "model_validate") and hasattr(params, "model_fields"):
        return PydanticParams(params)
    raise StepRegistryError(f"step parameters must be a StepParams subclass or a pydantic model, not {params!r}")
