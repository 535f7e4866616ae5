"""Jinja2 rendering for steps: StrictUndefined, errors that name the template and the line."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2

from agent.errors import StepFailed
from agent.inputfile import decode_input
from agent.runner.localfiles import find_local_file, local_file_problem, read_local_file
from agent.runner.services import RunServices


class _LocalFileLoader(jinja2.BaseLoader):
    """Templates (and what they include) read as a step's local files: inside the search directories,
    regular files, bounded in size (agent/runner/localfiles.py)."""

    def __init__(self, search: list[Path]) -> None:
        self.search = search

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = find_local_file(self.search, template)
        if path is None:
            problem = local_file_problem(self.search, template)
            if problem and problem.startswith("no file "):
                raise jinja2.TemplateNotFound(template)
            raise StepFailed(f"template {problem}")
        text = decode_input(read_local_file(self.search, template, StepFailed), path, StepFailed, what="template")
        return text, str(path), lambda: True


def template_environment(search: Sequence[Path]) -> jinja2.Environment:
    """The templates of `search`, each read and compiled once, then kept (a run shares one per
    search path among its hosts: compiling per host cost more CPU than sending the file)."""
    return jinja2.Environment(
        loader=_LocalFileLoader(list(search)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(
    search: Sequence[Path], name: str, variables: dict[str, Any], services: RunServices | None = None
) -> str:
    """Render `name` with StrictUndefined: a missing variable is an error naming template and line.
    With the run's `services`, each template is compiled once per run."""
    try:
        return _compiled(search, name, services).render(variables)
    except jinja2.TemplateNotFound:
        raise StepFailed(f"template {name} not found in {', '.join(map(str, search))}") from None
    except jinja2.TemplateSyntaxError as error:
        raise StepFailed(f"template {error.name or name}, line {error.lineno}: syntax error: {error.message}") from None
    except jinja2.UndefinedError as error:
        raise StepFailed(f"template {name}, line {_template_line(error, name)}: {error.message}") from None


def _compiled(search: Sequence[Path], name: str, services: RunServices | None) -> jinja2.Template:
    """`name` compiled, once per run with `services`. jinja2's own cache keeps a compiled template
    but does not make hosts wait for one being compiled: a hundred hosts reaching the same template
    at once compiled it ten times over (5-7 ms of CPU each)."""
    if services is None:
        return template_environment(search).get_template(name)
    key = ("templates", tuple(search))
    environment = services.shared(key, lambda: template_environment(search))
    return services.shared((*key, name), lambda: environment.get_template(name))


def _template_line(error: BaseException, name: str) -> int | None | str:
    # jinja2 rewrites tracebacks so the template's own frame carries its file name and line.
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.endswith(name):
            return frame.lineno
    return "?"
