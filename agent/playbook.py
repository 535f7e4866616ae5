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
Relative `src` paths are resolved against the playbook's directory (templates also against the
project's `templates/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from agent.errors import PlaybookError, did_you_mean
from agent.runner.context import find_local_file
from agent.steps.registry import StepParams, StepType, load_steps
from agent.yamlsource import Key, YamlSource, read_yaml

_TOP_KEYS = ("name", "description", "vars", "steps")


@dataclass(frozen=True)
class PlaybookStep:
    id: str  # unique within the playbook: the label, or the step name (+ "#n" when repeated)
    type: StepType
    params: StepParams
    line: int


@dataclass(frozen=True)
class Playbook:
    path: Path
    name: str
    steps: tuple[PlaybookStep, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source_dirs(self) -> list[Path]:
        """Where steps' local files are looked up: beside the playbook, then the project's templates/."""
        return source_dirs_of(self.path)


def source_dirs_of(playbook_path: Path) -> list[Path]:
    base = playbook_path.resolve().parent
    return [base, base.parent / "templates"]


def load_playbook(path: Path) -> Playbook:
    """Parse and validate the playbook at `path`; every problem is a one-line PlaybookError."""
    source = read_yaml(path, PlaybookError, shown_as=str(path))
    data = source.data
    if not isinstance(data, dict):
        raise PlaybookError(f"{source.shown_as}:1: a playbook is a mapping with a 'steps' list")
    for key in data:
        if key not in _TOP_KEYS:
            raise PlaybookError(f"{source.where((key,))}: unknown key{_did_you_mean(key, _TOP_KEYS)}; known: {', '.join(_TOP_KEYS)}")
    entries = data.get("steps")
    if not isinstance(entries, list) or not entries:
        raise PlaybookError(f"{source.where(('steps',))}: give a non-empty list of steps")
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        raise PlaybookError(f"{source.where(('vars',))}: expected a mapping of variables")
    known = load_steps(_step_names(entries))
    steps = [_parse_step(source, index, entry, known) for index, entry in enumerate(entries)]
    for index, step in enumerate(steps):
        _check_local_files(source, index, step)
    return Playbook(path.resolve(), str(data.get("name") or path.stem), _unique_ids(steps), variables)


def _step_names(entries: list) -> list[str]:
    names = []
    for entry in entries:
        keys = [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else []
        names += [str(key) for key in keys if key != "name"]
    return names


def _parse_step(source: YamlSource, index: int, entry: Any, known: dict[str, StepType]) -> PlaybookStep:
    key: Key = ("steps", index)
    if isinstance(entry, str):
        entry = {entry: None}
    if not isinstance(entry, dict):
        raise PlaybookError(f"{source.where(key)}: a step is a name, or a mapping of one step name to its parameters")
    label = entry.get("name")
    names = [name for name in entry if name != "name"]
    if len(names) != 1:
        raise PlaybookError(
            f"{source.where(key)}: give exactly one step per entry (found {', '.join(map(str, names)) or 'none'})"
        )
    name = names[0]
    if name not in known:
        raise PlaybookError(
            f"{source.where(key + (name,))}: unknown step '{name}'{_did_you_mean(name, known)}; "
            f"known steps: {', '.join(sorted(known))}"
        )
    step_type = known[name]
    params = _parse_params(source, key + (name,), step_type, entry[name])
    return PlaybookStep(str(label) if label else name, step_type, params, source.line(key))


def _parse_params(source: YamlSource, key: Key, step_type: StepType, raw: Any) -> StepParams:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PlaybookError(f"{source.where(key)}: parameters are a mapping, e.g. {{src: ..., dest: ...}}")
    try:
        return step_type.params.model_validate(raw)
    except ValidationError as error:
        problem = error.errors()[0]
        where = key + tuple(problem["loc"])
        raise PlaybookError(f"{source.where(where)}: {_explain(problem, step_type)}") from None


def _check_local_files(source: YamlSource, index: int, step: PlaybookStep) -> None:
    dirs = source_dirs_of(source.path)
    for name, src in step.params.local_files().items():
        if find_local_file(dirs, src) is None:
            where = source.where(("steps", index, step.type.name, name))
            raise PlaybookError(f"{where}: no file '{src}' in {' or '.join(str(d) for d in dirs)}")


def _explain(problem: dict, step_type: StepType) -> str:
    fields = step_type.params.model_fields
    if problem["type"] == "extra_forbidden":
        unknown = str(problem["loc"][-1])
        return (
            f"unknown parameter of step '{step_type.name}'{_did_you_mean(unknown, fields)}; "
            f"known: {', '.join(fields) or 'none'}"
        )
    if problem["type"] == "missing":
        return f"required parameter of step '{step_type.name}' is missing"
    message = problem["msg"].removeprefix("Value error, ")
    return f"{message} (got {problem['input']!r})" if "input" in problem and not isinstance(problem["input"], dict) else message


def _did_you_mean(word: object, choices) -> str:
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
