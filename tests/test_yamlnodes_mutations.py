"""The shipped examples, mutated at random, either load or fail with the reader's own one-line error.

Mutations are what an editor, a bad merge or a copy-paste does to a file: a byte or character put in
(YAML punctuation, control characters, bytes that are not UTF-8), a span deleted, a line duplicated
or deleted, a value replaced by one that only looks right (an impossible date, a tag, an alias).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.economics.program import DEFAULT_PROGRAM, load_program
from agent.errors import InventoryError, PlaybookError, ProgramError
from agent.inventory import load_inventory
from agent.runner.playbook import load_playbook

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yaml"))
INVENTORY = REPO / "inventory.example.yaml"

# Pieces of YAML syntax make a mutation reach past the scanner more often than random bytes alone.
TOKENS = [b":", b"- ", b"  ", b"\t", b"\n", b"#", b"&a ", b"*a", b"<<: *a", b"!x ", b"!!int ", b"{", b"}", b"[",
          b"]", b'"', b"'", b"?", b"|", b">", b"%", b"@", b"`", b",", b"~", b"2026-13-45", b"\x00", b"\x07",
          b"\xff", b"\xc3", "\u2028".encode(), "\ufeff".encode()]
VALUES = [b"2026-13-45", b"!!int abc", b"!!bool maybe", b"!!float x", b"!x y", b"*a", b"&a [*a]", b"{<<: *a}",
          b"{<<: x}", b"<<", b"=", b"~", b"[]", b"{}", b"[a, b]", b"{a: 1, a: 2}", b"''", b"-1", b"1e999", b".nan",
          b".inf", b"0x1F", b"0o17", b"1_000", b"1:30", b"yes", b"9" * 5000, b"[" * 150 + b"]" * 150]
insertion = st.one_of(
    st.sampled_from(TOKENS), st.binary(min_size=1, max_size=3), st.characters(codec="utf-8").map(str.encode)
)


@st.composite
def mutated(draw, original: bytes) -> bytes:
    data = original
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "duplicate_line", "delete_line", "replace_value"]))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data = data[:at] + draw(insertion) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 12)):]
        else:
            lines = data.splitlines(keepends=True) or [b""]
            index = draw(st.integers(0, len(lines) - 1))
            data = b"".join(lines[:index] + _changed_line(draw, kind, lines[index]) + lines[index + 1:])
    return data


def _changed_line(draw, kind: str, line: bytes) -> list[bytes]:
    if kind == "duplicate_line":
        return [line, line]
    if kind == "delete_line":
        return []
    key, colon, _ = line.partition(b": ")
    return [key + colon + draw(st.sampled_from(VALUES)) + b"\n"] if colon else [line]


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
    path.write_bytes(data.draw(mutated(original.read_bytes())))
    assert_loads_or_one_line(load_playbook, path, PlaybookError)


@PROPERTY
@given(data=st.data())
def test_a_mutated_program_loads_or_is_one_program_error(workdir: Path, data: st.DataObject) -> None:
    path = workdir / "program.yaml"
    path.write_bytes(data.draw(mutated(DEFAULT_PROGRAM.read_bytes())))
    assert_loads_or_one_line(load_program, path, ProgramError)


@PROPERTY
@given(data=st.data())
def test_a_mutated_inventory_loads_or_is_one_inventory_error(workdir: Path, data: st.DataObject) -> None:
    path = workdir / "inventory.yaml"
    path.write_bytes(data.draw(mutated(INVENTORY.read_bytes())))
    assert_loads_or_one_line(lambda p: load_inventory(p, ssh_config=workdir / "ssh_config"), path, InventoryError)


def test_the_unmutated_examples_load(workdir: Path) -> None:
    for playbook in PLAYBOOKS:
        load_playbook(workdir / "playbooks" / playbook.name)
    load_program(DEFAULT_PROGRAM)
    load_inventory(INVENTORY, ssh_config=workdir / "ssh_config")
