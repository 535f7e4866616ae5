"""docs/cli.md and docs/steps.md are generated from the code: these tests fail when they are stale."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent.cli.main import COMMANDS
from agent.cli.reference_docs import reference_files, stale_files

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
STEP_MODULES = sorted(path.stem for path in (REPO / "agent" / "steps").glob("*.py") if path.stem != "__init__")


def _check(docs_dir: Path, columns: str = "80") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.reference_docs", "--check", str(docs_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": columns},
    )


def test_the_checked_in_references_are_what_the_code_generates():
    assert stale_files(DOCS) == [], "stale: run `.venv/bin/python -m agent.cli.reference_docs` and commit docs/"


def test_check_names_a_stale_file_and_passes_once_it_is_regenerated(tmp_path):
    for name in ("cli.md", "steps.md"):
        shutil.copy(DOCS / name, tmp_path / name)
    (tmp_path / "cli.md").write_text((tmp_path / "cli.md").read_text().replace("--dry-run", "--dry"))
    stale = _check(tmp_path)
    assert stale.returncode == 1 and "cli.md: stale" in stale.stderr and "steps.md" not in stale.stderr
    subprocess.run(
        [sys.executable, "-m", "agent.cli.reference_docs", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert _check(tmp_path).returncode == 0


def test_the_references_do_not_depend_on_the_terminal_width():
    narrow = _check(DOCS, columns="40")
    assert narrow.returncode == 0, narrow.stderr


def test_every_command_and_every_step_has_a_section():
    text = {reference.name: reference.text for reference in reference_files()}
    assert [name for name in COMMANDS if f"### `ispagent {name}`" not in text["cli.md"]] == []
    assert "#### `ispagent lab up`" in text["cli.md"] and "#### `ispagent inventory from-ansible`" in text["cli.md"]
    assert [name for name in STEP_MODULES if f"## `{name}`" not in text["steps.md"]] == []


def test_a_step_section_carries_its_docstring_parameters_and_flags():
    steps = {reference.name: reference.text for reference in reference_files()}["steps.md"]
    shell = steps.split("## `shell`")[1].split("\n## ")[0]
    assert "Run a command under the host's /bin/sh" in shell
    assert "| `command` | `str` | required |" in shell and "| `changes` | `bool` | `True` |" in shell
    assert "| `creates` | `str \\| None` | `None` |" in shell  # a bare | would split the table's cell
    upload = steps.split("## `upload`")[1].split("\n## ")[0]
    assert '| `mode` | octal string | `"0644"` |' in upload  # as a playbook writes it, not 420
    facts = steps.split("## `facts`")[1].split("\n## ")[0]
    assert "read-only" in facts and "No parameters." in facts
