"""YAML read through located nodes: every reader's problems are one line of its own error class.

Inventories, playbooks and program.yaml share agent/yamlnodes.py; what a hostile or broken file
holds (control characters, custom tags, alias bombs, deep nesting, bad merges) is refused there with
`file:line: problem; fix`, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import InventoryError, PlaybookError, ProgramError
from agent.inventory import load_inventory
from agent.yamlnodes import MAX_ALIASED_VALUES, MAX_DEPTH, parse_yaml

REPO = Path(__file__).resolve().parents[2]


def parse(text: str, error: type = PlaybookError):
    return parse_yaml(textwrap.dedent(text), "f.yaml", error)


def message(text: str, error: type = PlaybookError, read=lambda root: root.value()) -> str:
    with pytest.raises(error) as raised:
        read(parse(text, error))
    assert "\n" not in str(raised.value)
    return str(raised.value)


# --- what a hostile or broken file holds, refused while composing ----------------------------------

# One line each, as an entry of a block mapping; the CLI tests below put it on a known line.
DEEP = "x: " + "[" * 10_000 + "]" * 10_000
BOMB = (
    "x: [&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"
    + "".join(f", &{name} [{', '.join([f'*{previous}'] * 10)}]" for previous, name in zip("abcdefg", "bcdefgh"))
    + "]"
)
HOSTILE = {
    "control_character": ('x: "bell\x07"', "the character U+0007 is not allowed in YAML"),
    "custom_tag": ("x: !vault secret", "the tag '!vault' is not supported here"),
    "alias_bomb": (BOMB, f"aliases expand to more than {MAX_ALIASED_VALUES} values"),
    "deep_nesting": (DEEP, f"nested more than {MAX_DEPTH} levels deep"),
    "merge_of_text": ("<<: just text", "cannot merge: `<<` takes a mapping or a list of mappings"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_inventory_is_one_line_naming_file_and_line(case: str, tmp_path: Path) -> None:
    line, problem = HOSTILE[case]
    path = tmp_path / "inventory.yaml"
    path.write_text(f"hosts:\n  web1:\n    address: 198.18.0.2\n    vars:\n      {line}\n")
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert str(raised.value).startswith(f"{path}:5: ") and problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_error_class_is_the_callers() -> None:
    for error in (InventoryError, PlaybookError, ProgramError):
        assert type(parse("a: 1\n", error).error("bad")) is error


def test_a_control_character_is_reported_at_its_own_line() -> None:
    assert message('a: 1\nb: 2\nc: "\x00"\n').startswith("f.yaml:3: the character U+0000 is not allowed in YAML; ")


def test_standard_tags_are_read_and_others_refused() -> None:
    assert parse("a: !!str 007\nb: !!int '12'\n").value() == {"a": "007", "b": 12}
    assert "the tag '!!python/object:os.system' is not supported" in message("a: !!python/object:os.system x\n")
    assert "the tag '!!binary' is not supported" in message("a: !!binary aGVsbG8=\n")
    assert "the tag '!!str' is not supported here" in message("a: !!str {b: 1}\n")


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert message("a: &loop [1, *loop]\n") == (
        "f.yaml:1: the alias '*loop' is inside the value it names; a value cannot contain itself"
    )


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 1  # the root mapping is one level
    assert parse("x: " + "[" * depth + "]" * depth).value()["x"] is not None


def test_a_value_that_only_looks_typed_is_an_error_naming_its_key() -> None:
    assert message("when:\n  start: 2026-13-45\n") == (
        "f.yaml:2: when.start: '2026-13-45' is not a valid timestamp; quote it to keep it as text"
    )
    assert "a: 'abc' is not a valid int" in message("a: !!int abc\n")


@pytest.mark.parametrize("kind", ["int", "float", "bool", "timestamp"])
def test_an_empty_explicitly_typed_value_is_an_error_not_a_crash(kind: str) -> None:
    # PyYAML's constructors hit IndexError (int) and AttributeError (timestamp) on ''
    assert message(f"a: [!!{kind} ]\n") == f"f.yaml:1: a[0]: '' is not a valid {kind}; quote it to keep it as text"


def test_a_key_holding_a_line_break_still_gives_one_line() -> None:
    text = message('a:\n  "x\\ny": {b: 1, b: 2}\n')
    assert text.startswith("f.yaml:2: a.x\\ny.b: key 'b' is defined twice")  # the break shown as an escape


# --- merge keys and duplicates --------------------------------------------------------------------


def test_merge_keys_are_applied_with_written_keys_winning() -> None:
    root = parse("""\
        base: &base {port: 22, user: root}
        other: &other {port: 2222, sudo: true}
        host: {<<: [*base, *other], user: deploy}
    """)
    assert root.mapping()["host"].value() == {"port": 22, "user": "deploy", "sudo": True}


def test_merging_leaves_the_anchor_as_written() -> None:
    root = parse("""\
        base: &base {<<: {a: 1}, b: 2}
        one: {<<: *base, b: 3}
        two: *base
    """)
    entries = root.mapping()
    assert entries["one"].value() == {"a": 1, "b": 3}
    assert entries["two"].value() == {"a": 1, "b": 2}
    assert entries["base"].value() == {"a": 1, "b": 2}


def test_a_duplicate_key_is_refused_at_any_depth() -> None:
    assert message("vars:\n  x:\n    a: 1\n    a: 2\n") == (
        "f.yaml:4: vars.x.a: key 'a' is defined twice (first on line 3); "
        "remove or rename one (YAML alone would silently keep the last)"
    )


# --- paths ----------------------------------------------------------------------------------------


def test_list_items_are_indexed_and_missing_keys_point_at_their_parent() -> None:
    root = parse("steps:\n  - facts\n  - upload:\n      src: a\n")
    assert str(root.at("steps", 1, "upload", "dest").error("missing")) == "f.yaml:3: steps[1].upload.dest: missing"
    assert str(root.at("steps", 1, "upload", "src").error("bad")) == "f.yaml:4: steps[1].upload.src: bad"


def test_an_empty_document_is_a_null_root_at_line_1() -> None:
    root = parse("# only a comment\n", InventoryError)
    assert root.is_null and root.mapping() == {}
    assert str(root.error("the inventory is empty")) == "f.yaml:1: the inventory is empty"


# --- through the real CLI: one line on stderr, exit 2, no traceback -------------------------------

PLAYBOOK = "name: hostile\nvars:\n  {line}\nsteps:\n  - facts\n"  # the hostile line is line 3
PROGRAM = "list_prices:\n  {line}\n"  # line 2


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


def _assert_one_line(result: subprocess.CompletedProcess, where: str, problem: str) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.rstrip("\n")]
    assert result.stderr.startswith(f"ispagent: error: {where} ") and problem in result.stderr
    assert result.returncode == 2


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_playbook_on_the_cli_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    line, problem = HOSTILE[case]
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(PLAYBOOK.format(line=line))
    (tmp_path / "inventory.yaml").write_text("hosts:\n  h1: {address: 198.18.0.2}\n")
    result = _cli("run", "playbook.yaml", "-i", "inventory.yaml", "--dry-run", "--state-dir", "state", cwd=tmp_path)
    _assert_one_line(result, "playbook.yaml:3:", problem)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_program_on_the_cli_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    line, problem = HOSTILE[case]
    (tmp_path / "program.yaml").write_text(PROGRAM.format(line=line))
    result = _cli("turnover", "--program", "program.yaml", "--ledger", "ledger.sqlite", cwd=tmp_path)
    _assert_one_line(result, "program.yaml:2:", problem)
