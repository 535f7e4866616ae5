"""What steps hand to later steps on one host: values under typed keys.

A key is declared by the package that produces its value (`PREFLIGHT` in agent/panel/hostprobe.py,
`LICENSE` in agent/licensing/ensure.py, ...), and a step says which keys it `provides` and `needs`
when it is registered, so a playbook that asks for a value before any step makes it is refused when
it is loaded. Nothing here knows any step: a third-party step declares keys of its own the same way.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class StateKey(Generic[T]):
    """The name of one value in a HostState; `what` says what it is, for messages."""

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.what = what

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class HostState:
    """One host's values, for one run. A resumed run starts empty: a step that provides a value
    later steps need is registered with rerun_on_resume=True."""

    def __init__(self, values: dict[StateKey[Any], Any] | None = None) -> None:
        self._values: dict[StateKey[Any], Any] = dict(values or {})

    @overload
    def get(self, key: StateKey[T]) -> T | None: ...
    @overload
    def get(self, key: StateKey[T], default: T) -> T: ...

    def get(self, key: StateKey[T], default: T | None = None) -> T | None:
        value: T | None = self._values.get(key, default)
        return value

    def set(self, key: StateKey[T], value: T) -> None:
        self._values[key] = value

    def __contains__(self, key: StateKey[Any]) -> bool:
        return key in self._values

    def by_name(self) -> dict[str, Any]:
        """The values by their keys' names (reports, test cases)."""
        return {key.name: value for key, value in self._values.items()}
