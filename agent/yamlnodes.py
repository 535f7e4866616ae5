"""YAML files as nodes that know their file, line and dotted key path, and turn into values or errors.

Inventories, playbooks and program.yaml are read with `yaml.compose`, not `yaml.safe_load`: only the
node tree keeps line numbers, and only there can a duplicate mapping key be seen (PyYAML's loader
keeps the last one silently). Every check reads a `LocatedNode` and raises the error class of the
file being read (InventoryError, PlaybookError, ProgramError) with one line:
`{file}:{line}: {key.path}: {problem}[; {fix}]`.

A file is refused while it is composed, before anything reads it, when it holds what only a broken
or hostile file holds: nesting deeper than MAX_DEPTH (Python's recursion limit is not far off),
aliases that expand to more than MAX_ALIASED_VALUES values (a "billion laughs" bomb) or that
contain themselves, and tags other than plain YAML's (`!vault`, `!!python/object`, `!!binary`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InputError, did_you_mean
from agent.inputfile import read_input_file
from agent.secrets import SECRET_FIELDS, SecretRefused, printable, register_secret, shown

MAX_DEPTH = 100
MAX_ALIASED_VALUES = 100_000
MAX_REREAD_CHARACTERS = 256 * 1024  # see _reread_up_to
MAX_KEY_SHOWN = 80  # characters of one key in an error's key path, as `shown` cuts values

_TAG = "tag:yaml.org,2002:"
_NULL, _MERGE, _VALUE = _TAG + "null", _TAG + "merge", _TAG + "value"
_SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge", "value")}
_TAGS = {yaml.ScalarNode: _SCALAR_TAGS, yaml.SequenceNode: {_TAG + "seq"}, yaml.MappingNode: {_TAG + "map"}}
_PLAIN_YAML = "remove it: only plain YAML is read (text, numbers, true/false, lists, mappings)"
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML counts as one, as its marks do
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CONSTRUCTOR = yaml.SafeLoader("")  # only its scalar constructors are called, directly: nothing is cached


def read_yaml_file(
    path: Path | str, error: type[InputError], *, what: str = "file", hint: str | None = None
) -> LocatedNode:
    """The root node of the one-document YAML file at `path`; a file with no document gives a null root.

    Every problem, from a missing file to a syntax error, raises `error` with one line. `what` and
    `hint` name the file and the fix for a missing one, as in `read_input_file`.
    """
    return parse_yaml(read_input_file(path, error, what=what, hint=hint), str(path), error)


def parse_yaml(text: str, source: str, error: type[InputError]) -> LocatedNode:
    """The root node of a one-document YAML text; `source` names it in errors, which raise `error`."""
    try:
        root = _compose(text)
    except _Refused as refused:
        raise located_error(error, source, refused.mark.line + 1, "", refused.problem, refused.fix) from None
    except yaml.reader.ReaderError as problem:  # a control character: the reader checks the text first
        line = len(_LINE_BREAK.findall(text, 0, problem.position)) + 1
        code = problem.character
        escaped = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        fix = f'delete it, or write it escaped inside double quotes: "{escaped}"'
        not_allowed = f"the character U+{code:04X} is not allowed in YAML"
        raise located_error(error, source, line, "", not_allowed, fix) from None
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark or problem.context_mark
        line = mark.line + 1 if mark else 1
        syntax = f"YAML syntax error: {problem.problem or problem.context}"
        fix = "check the indentation and quoting here and on the line above"
        raise located_error(error, source, line, "", syntax, fix) from None
    except yaml.YAMLError as problem:
        raise located_error(error, source, 1, "", f"YAML error: {problem}") from None
    if root is None:
        return LocatedNode(_null_node(yaml.Mark(source, 0, 0, 0, None, None)), "", source, 1, error)
    _register_secret_fields(root, source, error)
    return LocatedNode(root, "", source, _line(root), error)


def located_error(
    error: type[InputError], source: str, line: int, key_path: str, problem: str, fix: str | None = None
) -> InputError:
    """`error` with the one line `{source}:{line}: {key_path}: {problem}; {fix}` (parts left out when empty)."""
    key_path = printable(key_path, one_line=True)  # a quoted key may hold a line break or an escape sequence
    where = f"{source}:{line}: {key_path}: " if key_path else f"{source}:{line}: "
    # A key may be a quoted string holding a line break; the message must stay one line anyway.
    return error(" ".join((where + problem + (f"; {fix}" if fix else "")).splitlines()))


@dataclass(frozen=True)
class LocatedNode:
    """A YAML node, where it was written, and the error class of its file. For a mapping value,
    `line` is its key's line: a host's errors point at `web1:`, not at its first setting."""

    node: yaml.Node
    key_path: str
    source: str
    line: int
    error_class: type[InputError]

    @property
    def is_null(self) -> bool:
        return self.node.tag == _NULL

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def error(self, problem: str, fix: str | None = None) -> InputError:
        return located_error(self.error_class, self.source, self.line, self.key_path, problem, fix)

    def child(self, key: str, key_node: yaml.Node, value_node: yaml.Node) -> LocatedNode:
        return replace(self, node=value_node, key_path=_joined(self.key_path, key), line=_line(key_node))

    def at(self, *parts: str | int) -> LocatedNode:
        """The node below this one at `parts` (keys and list indexes). A part that is not there still
        names the path, at the line of the deepest part that is: `steps[0].upload.dest` of a missing dest."""
        located = self
        for part in parts:
            located = located._part(part)
        return located

    def describe(self) -> str:
        """How the value reads in an error: 'a list', 'a mapping', 'nothing' or the text quoted."""
        if self.is_sequence:
            return "a list"
        if self.is_mapping:
            return "a mapping"
        if self.is_null:
            return "nothing"
        return shown(self.node.value)

    def mapping(self, allowed: Collection[str] | None = None, *, entry: str = "key") -> dict[str, LocatedNode]:
        """The entries of a mapping (empty for a null value), checked for duplicates and unknown keys.

        `entry` names what a key is in messages ("host name", "group name"). `allowed` None means
        any key is accepted (vars, the host and group lists). `<<: *anchor` merges are applied.
        """
        if self.is_null:
            return {}
        if not self.is_mapping:
            raise self.error(f"expected a mapping, got {self.describe()}")
        entries: dict[str, LocatedNode] = {}
        for key, (key_node, value_node) in self._entries(entry).items():
            if allowed is not None and key not in allowed:
                unknown = self.child(key, key_node, key_node)
                fix = did_you_mean(key, allowed) or "expected one of " + ", ".join(allowed)
                raise unknown.error("unknown key", fix)
            entries[key] = self.child(key, key_node, value_node)
        return entries

    def sequence(self) -> list[LocatedNode]:
        """The items of a list (empty for a null value); a lone scalar counts as a list of one.

        Items share the list's key path: the line already points at the exact item.
        """
        if self.is_null:
            return []
        if isinstance(self.node, yaml.ScalarNode):
            return [self]
        if not self.is_sequence:
            raise self.error(f"expected a list, got {self.describe()}")
        return [replace(self, node=item, line=_line(item)) for item in self.node.value]

    def items(self) -> list[LocatedNode]:
        """The items of a list, each with its index in its key path (`steps[2]`); nothing else is a list."""
        if not self.is_sequence:
            raise self.error(f"expected a list, got {self.describe()}")
        return [self._item(index) for index in range(len(self.node.value))]

    def string(self) -> str:
        if not isinstance(self.node, yaml.ScalarNode) or self.is_null:
            raise self.error(f"expected a string, got {self.describe()}")
        # Scalars are read as written: `user: 007` is the user "007", not the integer 7.
        return self.node.value

    def integer(self, low: int, high: int) -> int:
        """A whole number written in decimal: YAML would read `0755` as octal 493 and `0x16` as 22."""
        if self.node.tag != _TAG + "int":
            raise self.error(f"expected an integer, got {self.describe()}")
        number = self.value()
        if not _DECIMAL.fullmatch(self.node.value):
            written = (
                "has a leading zero, which YAML reads as"
                if self.node.value.lstrip("+-").startswith("0")
                else "reads as"
            )
            raise self.error(f"{self.describe()} {written} the number {number}", "write it in plain decimal digits")
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
        """The plain Python value (str, int, list, dict, ...) as `yaml.safe_load` would build it, but
        with duplicate keys refused at any depth, and an alias read as a copy, never shared."""
        if self.is_mapping:
            return {
                self.child(key, key_node, key_node)._scalar(): self.child(key, key_node, value_node).value()
                for key, (key_node, value_node) in self._entries("key").items()
            }
        if self.is_sequence:
            return [item.value() for item in self.items()]
        return self._scalar()

    def _scalar(self) -> Any:
        if self.node.tag in (_MERGE, _VALUE):  # `<<` or `=` where no key is expected: just text
            return self.node.value
        construct = _CONSTRUCTOR.yaml_constructors[self.node.tag]
        # PyYAML's scalar constructors fail on odd text (`!!int abc`, an empty `!!timestamp`) with
        # whatever error their parsing hits first
        try:
            return construct(_CONSTRUCTOR, self.node)
        except (ValueError, KeyError, IndexError, AttributeError, TypeError, OverflowError, yaml.YAMLError):
            kind = self.node.tag.removeprefix(_TAG)
            raise self.error(f"{self.describe()} is not a valid {kind}", "quote it to keep it as text") from None

    def _entries(self, entry: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key text -> (key node, value node), duplicates refused, `<<` merges applied: keys written
        here win over merged ones, and an earlier mapping of `<<: [*a, *b]` over a later one. Unlike
        PyYAML's own merge, no node is changed: an anchor read twice reads the same both times."""
        written: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in self.node.value:
            key = self._key_text(key_node)
            if key in written:
                first = _line(written[key][0])
                raise self.child(key, key_node, key_node).error(
                    f"{entry} {shown(key)} is defined twice (first on line {first})",
                    "remove or rename one (YAML alone would silently keep the last)",
                )
            written[key] = (key_node, value_node)
            if key_node.tag == _MERGE:
                for source in self._merge_sources(key_node, value_node):
                    for name, pair in source._entries("key").items():
                        merged.setdefault(name, pair)
        return {**merged, **{key: pair for key, pair in written.items() if pair[0].tag != _MERGE}}

    def _merge_sources(self, key_node: yaml.Node, value_node: yaml.Node) -> list[LocatedNode]:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if not all(isinstance(source, yaml.MappingNode) for source in sources):
            merge = self.child("<<", key_node, value_node)
            problem = "cannot merge: `<<` takes a mapping or a list of mappings"
            raise merge.error(problem, "write `<<: *name` with a mapping's anchor")
        return [replace(self, node=source, line=_line(source)) for source in sources]

    def _key_text(self, key_node: yaml.Node) -> str:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
            raise replace(self, line=_line(key_node)).error("keys must be plain names, not lists or mappings")
        return key_node.value

    def _item(self, index: int) -> LocatedNode:
        item = self.node.value[index]
        return replace(self, node=item, key_path=_joined(self.key_path, index), line=_line(item))

    def _part(self, part: str | int) -> LocatedNode:
        if isinstance(part, int) and self.is_sequence and 0 <= part < len(self.node.value):
            return self._item(part)
        if isinstance(part, str) and self.is_mapping:
            found = self._entries("key").get(part)
            if found:
                return self.child(part, *found)
        return replace(self, node=_null_node(self.node.start_mark), key_path=_joined(self.key_path, part))


def _joined(key_path: str, part: str | int) -> str:
    """`hosts.web3` + `vars` -> `hosts.web3.vars`; a list index reads `steps[2]`. A key longer than
    MAX_KEY_SHOWN is cut: a key is the user's text, and a plain scalar may run over many lines."""
    if isinstance(part, int):
        return f"{key_path}[{part}]"
    if len(part) > MAX_KEY_SHOWN:
        part = part[: MAX_KEY_SHOWN - 1] + "…"
    return f"{key_path}.{part}" if key_path else part


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _null_node(mark: yaml.Mark) -> yaml.ScalarNode:
    return yaml.ScalarNode(_NULL, "", mark, mark)


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.mark, self.problem, self.fix = mark, problem, fix


def _compose(text: str) -> yaml.Node | None:
    if _FastGuardedLoader is not None:
        # libyaml words its syntax errors differently, and the messages users see must not depend
        # on how PyYAML was built: a text libyaml refuses is read again by the pure-Python parser,
        # whose error is the one reported.
        try:
            return _compose_with(_FastGuardedLoader, text)
        except _Refused:
            raise
        except yaml.MarkedYAMLError as fast_error:
            if len(text) > MAX_REREAD_CHARACTERS and fast_error.problem_mark is not None:
                _reread_up_to(text, fast_error.problem_mark.line)
                raise
        except yaml.YAMLError:
            pass
    return _compose_with(_GuardedLoader, text)


def _reread_up_to(text: str, line: int) -> None:
    """Raise the pure-Python parser's error for the lines up to libyaml's error line `line` (0-based).

    The pure-Python parser is about three times slower than libyaml: reading a 5 MB file again
    to word an error on its last line cost 20 s of CPU. The pure-Python parser reads in order, so
    it meets its error in the lines up to the one libyaml stopped at; when that prefix raises
    nothing (the error needed what follows), the caller reports libyaml's own error.
    """
    breaks = _LINE_BREAK.finditer(text)
    end = len(text)
    for count, found in enumerate(breaks):
        if count == line:
            end = found.end()
            break
    try:
        _compose_with(_GuardedLoader, text[:end])
    except yaml.MarkedYAMLError:
        raise
    except yaml.YAMLError:
        pass


def _compose_with(loader_class: type, text: str) -> yaml.Node | None:
    loader = loader_class(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _Guard:
    """The composer's node hook, refusing what the module doc lists; mixed into both loaders below."""

    def _start_guard(self) -> None:
        self._depth = 0
        self._aliased = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._compose_alias(parent, index, event)
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep", "write it flatter")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node.tag not in _TAGS[type(node)]:
            tag = node.tag.replace(_TAG, "!!", 1) if node.tag.startswith(_TAG) else node.tag
            raise _Refused(node.start_mark, f"the tag '{tag}' is not supported here", _PLAIN_YAML)
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return node

    def _compose_alias(self, parent: yaml.Node | None, index: Any, event: yaml.AliasEvent) -> yaml.Node:
        node = super().compose_node(parent, index)  # refuses an undefined alias
        size = self._sizes.get(id(node))
        if size is None:  # its anchor is still being composed: the alias is inside what it names
            problem = f"the alias '*{event.anchor}' is inside the value it names"
            raise _Refused(event.start_mark, problem, "a value cannot contain itself")
        self._aliased += size
        if self._aliased > MAX_ALIASED_VALUES:
            problem = f"aliases expand to more than {MAX_ALIASED_VALUES} values"
            raise _Refused(event.start_mark, problem, "write the values out, or alias fewer or smaller ones")
        return node


def _register_secret_fields(root: yaml.Node, source: str, error: type[InputError]) -> None:
    """Register the text under every secret key (activation_key, password...) before anything is checked:
    an error about another part of the file, even one that quotes the key pasted in the wrong place, masks it."""
    pending, seen = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:  # aliases share nodes
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (
                    isinstance(key, yaml.ScalarNode)
                    and isinstance(value, yaml.ScalarNode)
                    and key.value.lower() in SECRET_FIELDS
                ):
                    try:
                        register_secret(value.value)
                    except SecretRefused as problem:
                        raise located_error(error, source, _line(value), key.value, str(problem)) from None
        pending.extend(_children(node))


class _GuardedLoader(_Guard, yaml.SafeLoader):
    """SafeLoader: scanner, parser and composer in pure Python."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._start_guard()


try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    _FastGuardedLoader = None
else:

    class _FastGuardedLoader(
        _Guard, yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
    ):
        """libyaml's scanner and parser (ten times faster on a thousand-host inventory) feeding the
        same pure-Python composer and guard: Composer comes before CParser, so its node methods win."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._start_guard()

        def compose_scalar_node(self, anchor: str | None) -> yaml.ScalarNode:
            node = super().compose_scalar_node(anchor)
            node.style = node.style or None  # libyaml marks a plain scalar '' where PyYAML says None
            return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []
