"""Plug-ins of the partner emulator: code that sees each API call before it is handled (and may lose
the answer of one done), and may add `/admin/NAME` routes, without the emulator knowing it.

A test harness uses this to hold orders at a gate or to read counters from another process; a user
can script a situation of their own. Load one into a running lab's emulator with
`--extension module:Name` or `--extension path/to/file.py:Name` (repeatable), or with
$ISPAGENT_PARTNER_EXTENSIONS (the same specs, comma-separated), which `lab up` passes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import LabError

if TYPE_CHECKING:
    from agent.lab.partner.emulator import PartnerEmulator
    from agent.partner.operations import Operation

EXTENSIONS_ENV = "ISPAGENT_PARTNER_EXTENSIONS"
# An admin route: (query parameters, JSON body) -> a JSON-able reply.
AdminRoute = Callable[[Mapping[str, str], Any], Any]


class EmulatorExtension:
    """The base of a plug-in: admits every call, adds no route. Override what you need."""

    def admit(self, operation: Operation | None, params: Mapping[str, str]) -> bool:
        """Whether the call goes on; False refuses it unprocessed (the connection is reset, as by a
        server that went away). May block. `operation` is None for a function the API does not know."""
        return True

    def loses_answer(self, operation: Operation | None, params: Mapping[str, str]) -> bool:
        """Whether the answer of this call, done, is lost on the way (the client sees a reset): the
        commit-then-drop fault at a moment of the plug-in's choosing rather than at random."""
        return False

    def admin_routes(self, emulator: PartnerEmulator) -> Mapping[str, AdminRoute]:
        """Routes this plug-in adds under /admin/ (the admin token is checked before any runs)."""
        return {}


def load_extension(spec: str) -> EmulatorExtension:
    """The plug-in `spec` names (`module:Name` or `path/to/file.py:Name`), made without arguments."""
    where, _, name = spec.strip().rpartition(":")
    if not where or not name:
        raise LabError(f"partner emulator extension {spec!r}: write module:Name or path/to/file.py:Name")
    try:
        factory = getattr(_module(where), name)
    except (ImportError, AttributeError, OSError) as error:
        raise LabError(f"partner emulator extension {spec!r}: {type(error).__name__}: {error}") from None
    extension = factory()
    if not isinstance(extension, EmulatorExtension):
        raise LabError(f"partner emulator extension {spec!r} is not an EmulatorExtension")
    return extension


def extensions_from_environment() -> list[str]:
    return [spec for spec in os.environ.get(EXTENSIONS_ENV, "").split(",") if spec.strip()]


def _module(where: str):
    if not where.endswith(".py"):
        return importlib.import_module(where)
    path = Path(where).resolve()
    spec = importlib.util.spec_from_file_location(f"partner_extension_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
