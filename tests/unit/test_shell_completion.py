"""Shell completion (docs/completion.md): the installed command prints each shell's script, and bash
completes commands and subcommands with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ISPAGENT = Path(sys.executable).parent / "ispagent"


def _script(shell: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ISPAGENT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_ISPAGENT_COMPLETE": f"{shell}_source"},
    )


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _ispagent_completion ispagent"),
        ("zsh", "compdef _ispagent_completion ispagent"),
        ("fish", "complete --no-files --command ispagent"),
    ],
)
def test_the_completion_script_is_produced(shell, marker):
    done = _script(shell)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout and "_ISPAGENT_COMPLETE" in done.stdout


def _bash_completions(words: list[str]) -> list[str]:
    """What bash offers for the last of `words`, with the script `ispagent` printed for it sourced."""
    script = _script("bash").stdout
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
        f'_ispagent_completion {ISPAGENT}\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{ISPAGENT.parent}:{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_a_command_and_its_subcommands():
    assert _bash_completions(["ispagent", "sched"]) == ["schedule"]
    assert _bash_completions(["ispagent", "lab", "''"]) == ["down", "status", "up"]
    assert "--dry-run" in _bash_completions(["ispagent", "run", "--dr"])
