"""Jinja2 rendering for steps: StrictUndefined, errors that name the template and the line."""

from __future__ import annotations

import traceback
from pathlib import Path

import jinja2

from agent.errors import StepFailed


def render_template(search: list[Path], name: str, variables: dict) -> str:
    """Render `name` with StrictUndefined: a missing variable is an error naming template and line."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        return environment.get_template(name).render(variables)
    except jinja2.TemplateNotFound:
        raise StepFailed(f"template {name} not found in {', '.join(map(str, search))}") from None
    except jinja2.TemplateSyntaxError as error:
        raise StepFailed(f"template {error.name or name}, line {error.lineno}: syntax error: {error.message}") from None
    except jinja2.UndefinedError as error:
        raise StepFailed(f"template {name}, line {_template_line(error, name)}: {error.message}") from None


def _template_line(error: BaseException, name: str) -> int | str:
    # jinja2 rewrites tracebacks so the template's own frame carries its file name and line.
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.endswith(name):
            return frame.lineno
    return "?"
