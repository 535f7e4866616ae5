"""Imports run down the floors of the package, never up (docs/contributing.md's layout section draws them).

A module may import modules of its own floor or of a floor below. Imports inside functions count,
and so do imports under `if TYPE_CHECKING:`: an annotation that names an upper floor is a
dependency all the same (it was where the one import circle hid).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agent"

# Lowest first. A module belongs to the floor of the longest prefix that names it.
FLOORS: tuple[tuple[str, ...], ...] = (
    (
        "agent.errors",
        "agent.secrets",
        "agent.atomicfile",
        "agent.statedir",
        "agent.yamlnodes",
        "agent.editions",
        "agent.inputfile",
        "agent.userpath",
        "agent.clock",
        "agent.hoststate",
        "agent.gcpause",
        "agent.laxvalues",
    ),
    (
        "agent.inventory",
        "agent.transport",
        "agent.partner",
        "agent.ledger",
        "agent.panel",
        "agent.installer",
        "agent.economics",
        "agent.hostsettings",
        "agent.shipped",
        "agent.projectdir",
    ),
    ("agent.licensing",),
    ("agent.runner", "agent.scheduling", "agent.rollout"),
    ("agent.stepkit",),
    ("agent.steps",),
    ("agent.lab", "agent.testing", "agent.fabric"),  # agent.fabric: ispagent[fabric], for fabfiles
    ("agent.cli", "agent.__main__", "agent.fabric.tasks"),  # fab tasks print as the CLI does
)


def floor_of(module: str) -> int:
    if module == "agent":  # the package itself: its facade imports each name on first use, by its module's name
        return 0
    best, floor = "", -1
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, floor = prefix, index
    return floor


def module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every agent import in the file, `if TYPE_CHECKING:` blocks included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("agent")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent") and node.level == 0:
            found += [(node.lineno, node.module)]
    return found


SOURCES = sorted(AGENT.rglob("*.py"))


def test_every_module_has_a_floor():
    assert [module_name(path) for path in SOURCES if floor_of(module_name(path)) < 0] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_import_runs_up_a_floor(path):
    here = module_name(path)
    upward = [
        f"line {line}: {module} (floor {floor_of(module)} > {floor_of(here)})"
        for line, module in imported_modules(path)
        if floor_of(module) > floor_of(here)
    ]
    assert upward == [], f"{here} imports from a higher floor"
