"""The shipped examples, mutated at random, either load or fail with the reader's own one-line error.

Mutations are what an editor, a bad merge or a copy-paste does to a file, from the one mutator the fuzz
harness uses too (tests/harness/mutations.py): bytes and characters put in, spans deleted, lines
duplicated, deleted or re-indented, values and keys replaced by ones that only look right, merge
keys, alias bombs, deep nesting, a byte order mark, other line endings, UTF-16.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.economics.program import DEFAULT_PROGRAM, load_program
from agent.errors import InventoryError, PlaybookError, ProgramError
from agent.inventory import load_inventory
from agent.runner.playbook import load_playbook

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yaml"))
INVENTORY = REPO / "inventory.example.yaml"

# What a property test may grow a file to: past every reader's limits on nesting and value length,
# small enough for 200 examples a test (the fuzz harness tries the 64 MiB limit).
CASE_LIMIT = 256 * 1024


@st.composite
def mutated(draw, original: bytes, kind: str) -> bytes:
    """`original` damaged by the harness's one mutator (harness/mutations.py), with hypothesis's random."""
    return mutations.mutated(draw(st.randoms(use_true_random=False)), original, kind, CASE_LIMIT)


def assert_loads_or_one_line(load, path: Path, error_class: type) -> None:
    try:
        load(path)
    except error_class as error:
        assert len(str(error).splitlines()) == 1, str(error)


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of playbooks/ and templates/: a mutated playbook still finds the files it names."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "ssh_config").write_text("")
    return root


@PROPERTY
@given(data=st.data())
def test_a_mutated_playbook_loads_or_is_one_playbook_error(workdir: Path, data: st.DataObject) -> None:
    original = data.draw(st.sampled_from(PLAYBOOKS), label="playbook")
    path = workdir / "playbooks" / "mutated.yaml"
    path.write_bytes(data.draw(mutated(original.read_bytes(), "playbook")))
    assert_loads_or_one_line(load_playbook, path, PlaybookError)


@PROPERTY
@given(data=st.data())
def test_a_mutated_program_loads_or_is_one_program_error(workdir: Path, data: st.DataObject) -> None:
    path = workdir / "program.yaml"
    path.write_bytes(data.draw(mutated(DEFAULT_PROGRAM.read_bytes(), "program")))
    assert_loads_or_one_line(load_program, path, ProgramError)


@PROPERTY
@given(data=st.data())
def test_a_mutated_inventory_loads_or_is_one_inventory_error(workdir: Path, data: st.DataObject) -> None:
    path = workdir / "inventory.yaml"
    path.write_bytes(data.draw(mutated(INVENTORY.read_bytes(), "inventory")))
    assert_loads_or_one_line(lambda p: load_inventory(p, ssh_config=workdir / "ssh_config"), path, InventoryError)


def test_the_unmutated_examples_load(workdir: Path) -> None:
    for playbook in PLAYBOOKS:
        load_playbook(workdir / "playbooks" / playbook.name)
    load_program(DEFAULT_PROGRAM)
    load_inventory(INVENTORY, ssh_config=workdir / "ssh_config")
