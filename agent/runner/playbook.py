"""Playbooks: a YAML list of named steps with parameters, checked in full before any host is touched.

```yaml
name: smoke
vars: {greeting: hello}          # lowest precedence: inventory vars override them
steps:
  - facts
  - upload: {src: files/motd, dest: /etc/motd, mode: "0644"}
  - name: render the greeting       # optional label, shown in reports
    template: {src: greeting.j2, dest: /etc/greeting}
```
Relative `src` paths are resolved against the playbook's directory, then the `templates/` beside it,
then any directory listed under `source_dirs:`; a `src` outside them is refused (agent/runner/localfiles.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import PlaybookError, did_you_mean
from agent.hoststate import StateKey
from agent.runner.localfiles import local_file_problem
from agent.runner.params import NO_VALUE, ParamsError
from agent.runner.registry import StepRegistry, StepType
from agent.secrets import shown
from agent.userpath import expand_home
from agent.yamlnodes import LocatedNode, parse_yaml, read_yaml_file

_TOP_KEYS = ("name", "description", "vars", "source_dirs", "steps")


@dataclass(frozen=True)
class PlaybookStep:
    id: str  # unique within the playbook: the label, or the step name (+ "#n" when repeated)
    type: StepType
    params: Any  # the step's parameter model's instance
    line: int


@dataclass(frozen=True)
class Playbook:
    path: Path
    name: str
    steps: tuple[PlaybookStep, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    extra_dirs: tuple[Path, ...] = ()  # the playbook's `source_dirs:`
    sha256: str = ""  # of the text it was read from: a resumed run must run the same playbook

    @property
    def source_dirs(self) -> list[Path]:
        """Where steps' local files are looked up: beside the playbook, the templates/ beside it, `source_dirs:`."""
        return list(self._source_dirs)

    @functools.cached_property
    def _source_dirs(self) -> tuple[Path, ...]:
        # Once per run, not once per host: resolve() is a system call per component of the path.
        return tuple(source_dirs_of(self.path, self.extra_dirs))


def source_dirs_of(playbook_path: Path, extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    base = playbook_path.resolve().parent
    return [base, base.parent / "templates", *extra_dirs]


def load_playbook(path: Path, registry: StepRegistry | None = None) -> Playbook:
    """Parse and validate the playbook at `path`; every problem is a one-line PlaybookError.

    Step names are looked up in `registry` (a new StepRegistry: agent.steps and the entry points).
    """
    root = read_yaml_file(path, PlaybookError, what="playbook")
    return _playbook_of(root, path, _file_sha256(path), registry or StepRegistry())


def playbook_from_data(
    data: Mapping[str, Any], base_dir: Path | str = ".", name: str = "python", registry: StepRegistry | None = None
) -> Playbook:
    """A playbook from Python data shaped like a playbook file (`{"steps": [...], "vars": {...}}`),
    checked as a file is; local files are looked up from `base_dir` as from a playbook's directory."""
    import yaml

    try:
        text = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as error:
        raise PlaybookError(
            f"playbook {shown(name)}: not plain data (mappings, lists, text, numbers): {error}"
        ) from None
    path = Path(base_dir).resolve() / f"{name}.playbook"
    root = parse_yaml(text, f"playbook {name}", PlaybookError)
    return _playbook_of(root, path, hashlib.sha256(text.encode()).hexdigest(), registry or StepRegistry())


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise PlaybookError(f"{path}: cannot read: {error.strerror or error}") from None


def _playbook_of(root: LocatedNode, path: Path, sha256: str, registry: StepRegistry) -> Playbook:
    if not root.is_mapping:
        raise root.error("a playbook is a mapping with a 'steps' list")
    top = root.mapping()
    for key, node in top.items():
        if key not in _TOP_KEYS:
            raise node.error(f"unknown key{_did_you_mean(key, _TOP_KEYS)}", f"known: {', '.join(_TOP_KEYS)}")
    steps_node = top.get("steps") or root.at("steps")
    if not steps_node.is_sequence or not steps_node.node.value:
        raise steps_node.error("give a non-empty list of steps")
    variables = (top["vars"].value() if "vars" in top else None) or {}
    if not isinstance(variables, dict):
        raise top["vars"].error("expected a mapping of variables")
    extra_dirs = _extra_dirs(top.get("source_dirs"), path)
    entries = [_step_entry(item) for item in steps_node.items()]
    known = registry.load(name for _, fields in entries for name in fields if name != "name")
    steps = [_parse_step(item, fields, known) for item, fields in entries]
    _check_order(entries, steps, registry)
    source_dirs = source_dirs_of(path, extra_dirs)
    for (item, _), step in zip(entries, steps):
        _check_local_files(item, source_dirs, step)
    return Playbook(
        path.resolve(), _label(top.get("name")) or path.stem, _unique_ids(steps), variables, extra_dirs, sha256
    )


def _check_order(
    entries: list[tuple[LocatedNode, dict[str, LocatedNode]]], steps: list[PlaybookStep], registry: StepRegistry
) -> None:
    """Every value a step needs is provided by a step before it (`needs=` / `provides=` of @step)."""
    provided: set[StateKey[Any]] = set()
    for (item, _), planned in zip(entries, steps):
        missing = [key for key in planned.type.needs if key not in provided]
        if missing:
            key = missing[0]
            makers = sorted(name for name, known in registry.load().items() if key in known.provides)
            raise item.error(
                f"step '{planned.type.name}' needs {key.what} from a step before it",
                f"put {' or '.join(makers) or 'a step that provides it'} before it",
            )
        provided.update(planned.type.provides)


def _extra_dirs(node: LocatedNode | None, path: Path) -> tuple[Path, ...]:
    """`source_dirs:`: more directories steps may read local files from, said explicitly by the playbook."""
    if node is None:
        return ()
    dirs = []
    for item in node.sequence():
        written = item.string()
        directory = expand_home(written)
        directory = directory if directory.is_absolute() else path.resolve().parent / directory
        if not directory.is_dir():
            raise item.error(
                f"{shown(written)} is not a directory", "a relative path starts at the playbook's directory"
            )
        dirs.append(directory.resolve())
    return tuple(dirs)


def _step_entry(item: LocatedNode) -> tuple[LocatedNode, dict[str, LocatedNode]]:
    """A step as its fields: `- facts` reads as `- facts: null`."""
    if item.is_mapping:
        return item, item.mapping()
    if item.is_null or item.is_sequence:
        raise item.error("a step is a name, or a mapping of one step name to its parameters")
    return item, {item.string(): item.at(item.string())}


def _parse_step(item: LocatedNode, fields: dict[str, LocatedNode], known: dict[str, StepType]) -> PlaybookStep:
    names = [name for name in fields if name != "name"]
    if len(names) != 1:
        raise item.error(f"give exactly one step per entry (found {', '.join(names) or 'none'})")
    name = names[0]
    if name not in known:
        raise fields[name].error(
            f"unknown step {shown(name)}{_did_you_mean(name, known)}", f"known steps: {', '.join(sorted(known))}"
        )
    step_type = known[name]
    params = _parse_params(fields[name], step_type)
    return PlaybookStep(_label(fields.get("name")) or name, step_type, params, item.line)


def _label(node: LocatedNode | None) -> str:
    """A `name:` as written; empty when it is absent or null (then the file or step name stands in)."""
    return "" if node is None or node.is_null else node.string()


def _parse_params(node: LocatedNode, step_type: StepType) -> Any:
    if not (node.is_null or node.is_mapping):
        raise node.error("parameters are a mapping, e.g. {src: ..., dest: ...}")
    try:
        return step_type.params.parse(node.value() or {})
    except ParamsError as problem:
        raise node.at(*problem.loc).error(_explain(problem, step_type)) from None


def _check_local_files(item: LocatedNode, dirs: list[Path], step: PlaybookStep) -> None:
    local_files = getattr(step.params, "local_files", None)  # a published step's pydantic model may have none
    for name, src in (local_files() if local_files else {}).items():
        problem = local_file_problem(dirs, src)
        if problem:
            raise item.at(step.type.name, name).error(problem)


def _explain(problem: ParamsError, step_type: StepType) -> str:
    fields = step_type.params.fields()
    if problem.kind == "unknown":
        unknown = str(problem.loc[-1])
        return (
            f"unknown parameter of step '{step_type.name}'{_did_you_mean(unknown, fields)}; "
            f"known: {', '.join(fields) or 'none'}"
        )
    if problem.kind == "missing":
        return f"required parameter of step '{step_type.name}' is missing"
    if problem.value is NO_VALUE or isinstance(problem.value, dict):
        return problem.message
    return f"{problem.message} (got {shown(problem.value)})"


def _did_you_mean(word: object, choices: Iterable[object]) -> str:
    hint = did_you_mean(word, choices)
    return f" ({hint})" if hint else ""


def _unique_ids(steps: list[PlaybookStep]) -> tuple[PlaybookStep, ...]:
    seen: dict[str, int] = {}
    result = []
    for step in steps:
        seen[step.id] = seen.get(step.id, 0) + 1
        if seen[step.id] > 1:
            step = PlaybookStep(f"{step.id}#{seen[step.id]}", step.type, step.params, step.line)
        result.append(step)
    return tuple(result)
