"""YAML nodes that know their file, line and dotted key path, and turn into typed values or errors.

The inventory is read with `yaml.compose`, not `yaml.safe_load`: only the node tree keeps line
numbers, and only there can a duplicate mapping key be seen (PyYAML's loader keeps the last one
silently). Every check reads a `LocatedNode` and raises `InventoryError` with one line:
`{file}:{line}: {key.path}: {problem}[; {fix}]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterator

import yaml

from agent.errors import InventoryError, did_you_mean

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"


def located_error(source: str, line: int, key_path: str, problem: str, fix: str | None = None) -> InventoryError:
    where = f"{source}:{line}: {key_path}: " if key_path else f"{source}:{line}: "
    return InventoryError(where + problem + (f"; {fix}" if fix else ""))


def parse_document(text: str, source: str) -> LocatedNode | None:
    """The root node of a one-document YAML text, or None when the text holds no document."""
    try:
        # The pure-Python loader, not CSafeLoader: libyaml words its syntax errors differently, and
        # the messages users see (and tests pin) must not depend on how PyYAML was built.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        problem = f"YAML syntax error: {error.problem or error.context}"
        fix = "check the indentation and quoting here and on the line above"
        raise located_error(source, line, "", problem, fix) from None
    except yaml.YAMLError as error:  # e.g. a second document, or a reader error on bad bytes
        raise located_error(source, 1, "", f"YAML error: {error}".replace("\n", " ")) from None
    return LocatedNode(root, "", source, root.start_mark.line + 1) if root is not None else None


@dataclass(frozen=True)
class LocatedNode:
    """A YAML node and where it was written. For a mapping value, `line` is its key's line: a host's
    errors point at `web1:`, not at whichever of its settings happens to come first."""

    node: yaml.Node
    key_path: str
    source: str
    line: int

    @property
    def is_null(self) -> bool:
        return self.node.tag == _TAG + "null"

    def error(self, problem: str, fix: str | None = None) -> InventoryError:
        return located_error(self.source, self.line, self.key_path, problem, fix)

    def child(self, key: str, key_node: yaml.Node, value_node: yaml.Node) -> LocatedNode:
        path = f"{self.key_path}.{key}" if self.key_path else key
        return LocatedNode(value_node, path, self.source, key_node.start_mark.line + 1)

    def describe(self) -> str:
        """How the value reads in an error: 'a list', 'a mapping', 'nothing' or the text quoted."""
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if self.is_null:
            return "nothing"
        return repr(self.node.value)

    def mapping(self, allowed: Collection[str] | None = None, *, entry: str = "key") -> dict[str, LocatedNode]:
        """The entries of a mapping (empty for a null value), checked for duplicates and unknown keys.

        `entry` names what a key is in messages ("host name", "group name"). `allowed` None means
        any key is accepted (vars, the host and group lists).
        """
        if self.is_null:
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping, got {self.describe()}")
        entries: dict[str, LocatedNode] = {}
        for key_node, value_node in self._pairs_with_merges(entry):
            key = self._key_text(key_node)
            if allowed is not None and key not in allowed:
                raise self._unknown_key(key, key_node, allowed)
            entries[key] = self.child(key, key_node, value_node)
        return entries

    def sequence(self) -> list[LocatedNode]:
        """The items of a list (empty for a null value); a lone scalar counts as a list of one."""
        if self.is_null:
            return []
        if isinstance(self.node, yaml.ScalarNode):
            return [self]
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {self.describe()}")
        # Items share the list's key path: the line already points at the exact item.
        return [LocatedNode(item, self.key_path, self.source, item.start_mark.line + 1) for item in self.node.value]

    def string(self) -> str:
        if not isinstance(self.node, yaml.ScalarNode) or self.is_null:
            raise self.error(f"expected a string, got {self.describe()}")
        # Scalars are read as written: `user: 007` is the user "007", not the integer 7.
        return self.node.value

    def integer(self, low: int, high: int) -> int:
        if self.node.tag != _TAG + "int":
            raise self.error(f"expected an integer, got {self.describe()}")
        number = self.value()
        if not low <= number <= high:
            raise self.error(f"{number} is out of range {low}-{high}")
        return number

    def positive_number(self) -> float:
        if self.node.tag not in (_TAG + "int", _TAG + "float"):
            raise self.error(f"expected a number of seconds, got {self.describe()}")
        number = float(self.value())
        if not number > 0:
            raise self.error(f"expected a positive number of seconds, got {self.node.value}")
        return number

    def boolean(self) -> bool:
        if self.node.tag != _TAG + "bool":
            raise self.error(f"expected true or false, got {self.describe()}")
        return self.value()

    def value(self) -> Any:
        """The plain Python value (str, int, list, dict, ...), as `yaml.safe_load` would build it."""
        return yaml.SafeLoader("").construct_object(self.node, deep=True)

    def _pairs_with_merges(self, entry: str) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """Key/value pairs with `<<: *anchor` merges applied, after rejecting duplicate keys."""
        first_line: dict[str, int] = {}
        for key_node, _ in self.node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key_text(key_node)
            if key in first_line:
                duplicate = self.child(key, key_node, key_node)
                raise duplicate.error(
                    f"{entry} '{key}' is defined twice (first on line {first_line[key]})",
                    "remove or rename one (YAML alone would silently keep the last)",
                )
            first_line[key] = key_node.start_mark.line + 1
        if not any(key_node.tag == _MERGE_TAG for key_node, _ in self.node.value):
            yield from self.node.value
            return
        # flatten_mapping rewrites the node it is given; work on a copy so an aliased node read
        # twice stays as written. Merged keys come first, so explicit keys override them below.
        merged = yaml.MappingNode(self.node.tag, list(self.node.value), self.node.start_mark, self.node.end_mark)
        try:
            yaml.SafeLoader("").flatten_mapping(merged)
        except yaml.MarkedYAMLError as error:
            raise self.error(f"cannot merge: {error.problem}") from None
        yield from {self._key_text(key): (key, value) for key, value in merged.value}.values()

    def _key_text(self, key_node: yaml.Node) -> str:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "null":
            line = key_node.start_mark.line + 1
            raise located_error(self.source, line, self.key_path, "keys must be plain names, not lists or mappings")
        return key_node.value

    def _unknown_key(self, key: str, key_node: yaml.Node, allowed: Collection[str]) -> InventoryError:
        located = self.child(key, key_node, key_node)
        return located.error("unknown key", did_you_mean(key, allowed) or "expected one of " + ", ".join(allowed))
