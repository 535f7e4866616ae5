"""Everything the command line prints goes through here: secrets masked, control characters escaped.

`echo` for output (tables keep their lines), `echo_json` for `--json` (the data is masked before it
is encoded, so JSON's escaping cannot hide a secret), `error_line` for the one line of an error.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

import click

from agent.secrets import masked, printable


def echo(
    text: str = "", *, err: bool = False, nl: bool = True, file: TextIO | None = None, color: str | None = None
) -> None:
    """Print `text` masked and escaped; `color` styles it (after escaping, so its own codes survive)."""
    safe = printable(text)
    click.echo(click.style(safe, fg=color) if color else safe, err=err, nl=nl, file=file)


def echo_json(data: Any) -> None:
    echo(json.dumps(masked(data), indent=2))


def error_line(error: BaseException) -> str:
    """`ispagent: error: ...` on one line, whatever the message holds."""
    return f"ispagent: error: {printable(str(error), one_line=True)}"
