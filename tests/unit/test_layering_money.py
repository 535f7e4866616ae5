"""Which of the money layers (licensing, economics, ledger) may import which: read from the source, transitively (lazy imports inside functions count)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agent"


def _module_of(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _path_of(module: str) -> Path | None:
    base = AGENT.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@cache
def _imports(module: str) -> frozenset[str]:
    """agent modules `module` imports anywhere in its source, with the packages they sit in."""
    path = _path_of(module)
    if path is None:
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from agent.licensing import account`
    found = set()
    for name in names:
        if not name.startswith("agent."):
            continue
        parts = name.split(".")
        found.update(".".join(parts[:n]) for n in range(2, len(parts) + 1) if _path_of(".".join(parts[:n])))
    return frozenset(found - {module})


def _reach(package: str) -> dict[str, list[str]]:
    """Every agent module reachable from `package`'s modules -> one import chain that gets there."""
    start = [_module_of(p) for p in sorted((AGENT / package).rglob("*.py"))]
    chains = {m: [m] for m in start}
    todo = list(start)
    while todo:
        module = todo.pop()
        for imported in sorted(_imports(module)):
            if imported not in chains:
                chains[imported] = chains[module] + [imported]
                todo.append(imported)
    return chains


def _offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        " -> ".join(chain)
        for module, chain in sorted(_reach(package).items())
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]


def test_licensing_may_read_economics_for_prices_but_economics_never_reads_licensing():
    assert _offending("economics", ("agent.licensing",)) == []
    assert _offending("licensing", ("agent.economics",)) != []  # the direction chosen: licensing -> economics


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("licensing", ("agent.cli", "agent.steps", "agent.runner")),
        ("economics", ("agent.cli", "agent.steps", "agent.runner", "agent.partner")),
        ("ledger", ("agent.cli", "agent.steps", "agent.runner", "agent.licensing", "agent.economics", "agent.partner")),
    ],
)
def test_lower_layers_do_not_import_higher_ones(package, forbidden):
    assert _offending(package, forbidden) == []


def test_the_walk_sees_imports_inside_functions():
    assert "agent.licensing.account" in _imports("agent.cli.licenses_cmd")
