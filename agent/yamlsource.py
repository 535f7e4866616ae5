"""YAML files read with the line of every key kept, so errors can say `file:line: key: problem`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.inputfile import read_input_file

Key = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlSource:
    """Plain data from a YAML file plus the line where each key path starts."""

    path: Path
    shown_as: str  # the path as the user gave it, for messages
    data: Any
    lines: dict[Key, int]

    def line(self, key: Key) -> int:
        """The line of `key`, or of its nearest ancestor that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def where(self, key: Key) -> str:
        return f"{self.shown_as}:{self.line(key)}: {dotted(key)}"


def dotted(key: Key) -> str:
    """`("hosts", "web3", "vars", "edition")` -> `hosts.web3.vars.edition`; list items as `[i]`."""
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def read_yaml(path: Path, error: type[Exception], shown_as: str | None = None) -> YamlSource:
    """Parse `path`; syntax errors, duplicate keys and unreadable files raise `error` with a line."""
    shown = shown_as or str(path)
    text = read_input_file(path, error)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark or problem.context_mark
        line = mark.line + 1 if mark else 1
        raise error(f"{shown}:{line}: YAML syntax error: {problem.problem}") from None
    lines: dict[Key, int] = {(): 1}
    if node is None:
        return YamlSource(path, shown, None, lines)
    data = _to_python(node, (), lines, shown, error)
    return YamlSource(path, shown, data, lines)


def _to_python(node: yaml.Node, key: Key, lines: dict[Key, int], shown: str, error) -> Any:
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            name = _scalar(key_node)
            if name in result:
                raise error(
                    f"{shown}:{key_node.start_mark.line + 1}: {dotted(key + (str(name),))}: "
                    f"duplicate key (first on line {lines[key + (str(name),)]}); keep one"
                )
            lines[key + (str(name),)] = key_node.start_mark.line + 1
            result[name] = _to_python(value_node, key + (str(name),), lines, shown, error)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, key + (i,), lines, shown, error) for i, item in enumerate(node.value)]
    return _scalar(node)


_SCALARS = yaml.SafeLoader("")  # only its constructor is used: it resolves tags like safe_load


def _scalar(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _SCALARS.construct_object(node, deep=True)
    # A mapping or list used as a key: keep its YAML text, which is never a valid key anyway.
    return yaml.serialize(node).strip()
