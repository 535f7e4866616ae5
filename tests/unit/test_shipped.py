"""The wheel carries the playbooks, templates and example inventory, and an installed ispagent finds them
from any directory; a playbook is given by file or by a shipped playbook's name."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import shipped
from agent.cli.main import cli
from agent.errors import InputError
from agent.inventory import load_inventory
from agent.shipped import (
    find_playbook,
    playbook_names,
    playbooks_dir,
    shipped_root,
    templates_dir,
)

REPO = Path(__file__).resolve().parents[2]
# What a wheel is built from: the sources `pip wheel` and `python -m build` read (no tests, no venv).
BUILD_INPUTS = ["agent", "playbooks", "templates", "inventory.example.yaml", "pyproject.toml", "README.md"]
SHIPPED_IN_WHEEL = "agent/shipped_data/"


def checkout_files(*tops: str) -> dict[str, bytes]:
    """The checkout's files under `tops`, by path relative to the checkout (caches left out)."""
    found = {}
    for top in tops:
        start = REPO / top
        for path in [start] if start.is_file() else sorted(start.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(REPO).as_posix()] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built by pip from a copy of the build inputs (the checkout itself is left as it is)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(
            REPO / name,
            source / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if (REPO / name).is_dir() else {}),
        )
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel_file,) = out.glob("ispagent-*.whl")
    return wheel_file


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (no dependencies: they come from this venv) into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m agent ARGS` with the installed wheel first on the path, from `cwd` (not the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    return subprocess.run(
        [sys.executable, "-P", "-m", "agent", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_wheel_holds_the_checkouts_playbooks_templates_and_example_inventory_byte_for_byte(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.removeprefix(SHIPPED_IN_WHEEL): archive.read(name)
            for name in archive.namelist()
            if name.startswith(SHIPPED_IN_WHEEL)
        }
    assert shipped == checkout_files("playbooks", "templates", "inventory.example.yaml")
    assert {"playbooks/install.yaml", "templates/ispmanager/ispagent.conf.j2", "inventory.example.yaml"} <= set(shipped)


def test_the_wheel_holds_every_module_and_data_file_of_agent(wheel):
    # pyproject.toml lists the packages (a mapped data package cannot be found): a new one must be added there.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [name for name in checkout_files("agent") if name not in names]
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing[:10]}"


def test_an_installed_wheel_finds_its_playbooks_from_an_empty_directory(installed, tmp_path):
    script = (
        "import json, pathlib; from agent.shipped import find_playbook, shipped_root, templates_dir; "
        "print(json.dumps([str(shipped_root()), str(find_playbook(pathlib.Path('install'))), "
        "str(templates_dir())]))"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-P", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    root, install, templates = map(Path, json.loads(done.stdout))
    assert root == installed / "agent" / "shipped_data"
    assert install.read_bytes() == (REPO / "playbooks" / "install.yaml").read_bytes()
    assert (templates / "ispmanager" / "ihttpd.conf.j2").is_file() and templates.parent == root


def test_init_from_an_installed_wheel_writes_what_inventory_check_passes(installed, tmp_path):
    made = run_installed(installed, tmp_path, "init", "fleet")
    assert made.returncode == 0, made.stderr
    check = run_installed(
        installed, tmp_path, "inventory", "check", "-i", "fleet/inventory.yaml", "--ssh-config", os.devnull
    )
    assert check.returncode == 0, check.stderr
    hosts = len(load_inventory(REPO / "inventory.example.yaml").hosts)
    assert f"{hosts} of {hosts} hosts" in check.stdout
    written = tmp_path / "fleet" / "playbooks" / "install.yaml"
    assert written.read_bytes() == (REPO / "playbooks" / "install.yaml").read_bytes()


def test_a_run_of_an_unknown_playbook_name_from_the_installed_wheel_is_one_line(installed, tmp_path):
    (tmp_path / "inventory.yaml").write_text("hosts: {web1: {address: 127.0.0.1}}\n")
    done = run_installed(installed, tmp_path, "run", "instal", "-i", "inventory.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "ispagent: error: 'instal': no such playbook file, nor a shipped playbook of that "
        "name (shipped: audit, decommission, install, license-only, reprovision, smoke)"
    )


def test_in_a_checkout_the_shipped_files_are_the_checkouts_own():
    assert shipped_root() == REPO
    assert playbooks_dir() == REPO / "playbooks" and templates_dir() == REPO / "templates"
    assert playbook_names() == sorted(path.stem for path in (REPO / "playbooks").glob("*.yaml"))


def test_hosts_asking_at_once_look_the_shipped_files_up_once(monkeypatch):
    # A run's hosts first ask for the templates all at once (configure, verify): the first answer
    # must serve them all, not be looked up again by every thread that asked before it came.
    lookups = []
    real = importlib.resources.files

    def slow_files(anchor):
        lookups.append(anchor)
        time.sleep(0.05)
        return real(anchor)

    monkeypatch.setattr(shipped.importlib.resources, "files", slow_files)
    shipped._shipped_root.cache_clear()
    try:
        start = threading.Barrier(20)
        found: list[Path] = []
        threads = [threading.Thread(target=lambda: (start.wait(), found.append(templates_dir()))) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        monkeypatch.undo()
        shipped._shipped_root.cache_clear()
    assert found == [REPO / "templates"] * 20
    assert len(lookups) <= 2  # the data package, then the checkout beside the package: one lookup


@pytest.mark.parametrize("given", ["install", "install.yaml"])
def test_a_shipped_playbook_is_found_by_name_where_no_such_file_exists(given, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_playbook(Path(given)) == REPO / "playbooks" / "install.yaml"


def test_a_local_file_wins_over_a_shipped_playbook_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "install.yaml").write_text("steps: [facts]\n")
    assert find_playbook(Path("install.yaml")) == Path("install.yaml")
    assert find_playbook(Path("install")) == REPO / "playbooks" / "install.yaml"


@pytest.mark.parametrize(
    "given",
    [
        "sub/install",
        "/nonexistent/install.yaml",
        "install.yml",
        "instal",
        "files",
        "../playbooks/install",
        "install\n",
        "\x1b[2Jinstall",
    ],
)
def test_anything_else_is_no_playbook_in_one_line(given, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as raised:
        find_playbook(Path(given))
    message = str(raised.value)
    assert "no such playbook file" in message and len(message.splitlines()) == 1 and "\x1b" not in message


def test_run_with_an_unknown_name_exits_2_in_one_line_before_reading_the_inventory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "smok", "-i", "missing.yaml", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and "'smok'" in result.output
