"""`ispagent init DIR`: the shipped inventory, playbooks and templates to edit, in a new or empty DIR only.

Whatever DIR is (the mutator's damage to docs/install.md's example directory), init either writes the
whole tree into DIR and nothing elsewhere, or refuses in one line with exit 2 and leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import mutations
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent import projectdir
from agent.cli.main import cli
from agent.inventory import load_inventory
from agent.projectdir import shipped_files
from agent.runner.playbook import load_playbook
from agent.shipped import templates_dir

REPO = Path(__file__).resolve().parents[2]
# What init writes, by path in DIR, and from which checkout file.
EXPECTED = {
    "inventory.yaml": REPO / "inventory.example.yaml",
    **{
        path.relative_to(REPO).as_posix(): path
        for top in ("playbooks", "templates")
        for path in (REPO / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    },
}
# Deep enough that no case's `..` components reach past the test's own directory (the mutator adds at
# most two per operation, four operations).
SANDBOX_DEPTH = 10


def init(directory: str | Path):
    return CliRunner().invoke(cli, ["init", "--", os.fsdecode(directory)])


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root`: a file's bytes, None for a directory or link."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            found[os.fsdecode(path.relative_to(root))] = (
                path.read_bytes() if path.is_file() and not path.is_symlink() else None
            )
    return found


def assert_refused_in_one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.output
    return lines[0]


def assert_printable(text: str) -> None:
    assert not [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")], text


def assert_is_the_shipped_tree(directory: Path) -> None:
    assert tree(directory) == {
        **{name: source.read_bytes() for name, source in EXPECTED.items()},
        **{name: None for name in _folders(EXPECTED)},
    }
    assert stat.S_IMODE((directory / "inventory.yaml").stat().st_mode) == 0o600


def _folders(files) -> set[str]:
    return {Path(name).parents[i].as_posix() for name in files for i in range(len(Path(name).parents) - 1)}


def test_what_init_writes_is_what_ships():
    assert {relative.as_posix(): source for source, relative in shipped_files()} == EXPECTED


def test_init_writes_inventory_playbooks_and_templates_that_check_and_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = init("fleet")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "init: wrote 'fleet': inventory.yaml, 6 playbooks, 3 templates"
    assert "ispagent inventory check -i fleet/inventory.yaml" in result.output
    assert_is_the_shipped_tree(tmp_path / "fleet")
    check = CliRunner().invoke(cli, ["inventory", "check", "-i", "fleet/inventory.yaml", "--ssh-config", os.devnull])
    hosts = len(load_inventory(REPO / "inventory.example.yaml").hosts)
    assert check.exit_code == 0 and f"{hosts} of {hosts} hosts" in check.output, check.output
    assert len(load_inventory(tmp_path / "fleet" / "inventory.yaml", ssh_config=Path(os.devnull)).hosts) == hosts
    for playbook in (tmp_path / "fleet" / "playbooks").glob("*.yaml"):
        # The copy's own templates/ comes before the shipped ones (configure appends those last).
        assert load_playbook(playbook).source_dirs[:2] == [
            tmp_path / "fleet" / "playbooks",
            tmp_path / "fleet" / "templates",
        ]
    assert templates_dir() not in load_playbook(tmp_path / "fleet" / "playbooks" / "install.yaml").source_dirs


def test_an_existing_empty_directory_is_filled(tmp_path):
    (tmp_path / "fleet").mkdir()
    assert init(tmp_path / "fleet").exit_code == 0
    assert_is_the_shipped_tree(tmp_path / "fleet")


def test_a_second_init_overwrites_nothing(tmp_path):
    assert init(tmp_path / "fleet").exit_code == 0
    (tmp_path / "fleet" / "inventory.yaml").write_text("hosts: {mine: {}}\n")
    before = tree(tmp_path)
    line = assert_refused_in_one_line(init(tmp_path / "fleet"))
    assert "exists and is not empty" in line and tree(tmp_path) == before


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda path: path.write_text("x"), "not a directory"),
        (lambda path: (path.mkdir(), (path / ".keep").write_text("")), "not empty"),
        (lambda path: path.symlink_to(path.parent / "elsewhere"), "symbolic link"),
        (lambda path: ((path.parent / "empty").mkdir(), path.symlink_to(path.parent / "empty")), "symbolic link"),
        (lambda path: None, "parent directory does not exist"),
    ],
)
def test_a_directory_init_cannot_own_is_refused_and_nothing_is_written(tmp_path, make, why):
    target = tmp_path / "fleet" if why != "parent directory does not exist" else tmp_path / "no" / "fleet"
    make(target)
    before = tree(tmp_path)
    assert why in assert_refused_in_one_line(init(target))
    assert tree(tmp_path) == before


def test_what_another_process_puts_in_dir_while_init_writes_is_left_and_only_inits_own_files_go(tmp_path, monkeypatch):
    (tmp_path / "fleet").mkdir()
    copy = projectdir._copy

    def copy_while_someone_writes_templates(source, destination, mode):
        (tmp_path / "fleet" / "templates").mkdir(exist_ok=True)
        copy(source, destination, mode)

    monkeypatch.setattr(projectdir, "_copy", copy_while_someone_writes_templates)
    line = assert_refused_in_one_line(init(tmp_path / "fleet"))
    assert "'templates' appeared while init wrote" in line
    assert tree(tmp_path) == {"fleet": None, "fleet/templates": None}


def test_the_root_directory_is_refused():
    assert "not empty" in assert_refused_in_one_line(init("/"))


@st.composite
def sandboxed_case(draw):
    """A directory name from the mutator, and what is at that name beforehand."""
    name = mutations.mutated(draw(st.randoms(use_true_random=False)), mutations.originals("init")[0], "init")
    return name, draw(st.sampled_from(["nothing", "empty dir", "file", "non-empty dir", "link"]))


def _prepare(target: bytes, state: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        if state == "empty dir":
            os.mkdir(target)
        elif state == "file":
            Path(os.fsdecode(target)).write_text("mine")
        elif state == "non-empty dir":
            os.mkdir(target)
            Path(os.fsdecode(target), "mine").write_text("mine")
        elif state == "link":
            os.symlink(b"elsewhere", target)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=sandboxed_case())
def test_any_directory_name_gives_the_whole_tree_there_or_one_line_and_nothing(case, tmp_path_factory):
    name, state = case
    root = tmp_path_factory.mktemp("init")
    cwd = root.joinpath(*["d"] * SANDBOX_DEPTH)
    cwd.mkdir(parents=True)
    (cwd / "mine").write_text("mine")  # so that `.` is a directory that is not empty
    # An absolute name (a deletion can make one) is kept inside the sandbox too.
    given = os.fsencode(cwd) + name if name.startswith(b"/") else name
    target = os.path.normpath(os.path.join(os.fsencode(cwd), given)) if b"\0" not in given else None
    with contextlib.chdir(cwd):
        _prepare(given, state)
        before = tree(root)
        result = init(given)
    after = tree(root)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_printable(result.output)
    if result.exit_code != 0:
        event(f"refused: {assert_refused_in_one_line(result).rpartition(': ')[2][:40]}")
        assert after == before
        return
    event(f"written ({state})")
    written = Path(os.fsdecode(target))
    assert_is_the_shipped_tree(written)
    inside = os.fsdecode(written.relative_to(root))
    assert {path for path in after if path not in before} <= {inside, *(f"{inside}/{p}" for p in tree(written))}
    assert {path: data for path, data in after.items() if path in before} == before
