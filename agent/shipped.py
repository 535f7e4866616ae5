"""The files ispagent ships for users to run and to copy: the playbooks, their templates, the example inventory.

Everything that reads them goes through here. In an installed wheel they are the package data
`agent/shipped_data/` (pyproject.toml maps the checkout's top-level `playbooks/`, `templates/` and
`inventory.example.yaml` there at build time, so the checkout stays their one source). An editable
install or a bare checkout has no such package (setuptools' editable finder cannot map a data-only
package), and there they are the checkout's own top-level files.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from pathlib import Path

from agent.errors import InputError
from agent.secrets import shown

DATA_PACKAGE = "agent.shipped_data"
PLAYBOOKS = "playbooks"
TEMPLATES = "templates"
EXAMPLE_INVENTORY = "inventory.example.yaml"
PLAYBOOK_SUFFIX = ".yaml"


_ROOT_FOUND = threading.Lock()


def shipped_root() -> Path:
    """The directory holding `playbooks/`, `templates/` and `inventory.example.yaml`."""
    # Looked up once: functools.cache alone lets every host thread that asks before the first answer
    # look it up too (86 of a 100-host audit's hosts did, each importing and resolving).
    with _ROOT_FOUND:
        return _shipped_root()


@functools.cache
def _shipped_root() -> Path:
    try:
        # A namespace package's files() is a MultiplexedPath; its children are plain paths.
        playbooks = importlib.resources.files(DATA_PACKAGE) / PLAYBOOKS
    except ModuleNotFoundError:
        playbooks = importlib.resources.files("agent") / ".." / PLAYBOOKS
    if not isinstance(playbooks, Path):
        # Playbooks and templates are read as files by path (a playbook's templates/ is found beside it).
        raise InputError(
            f"ispagent is installed where its files are not plain files ({shown(str(playbooks))}): "
            "install it unpacked (pip, pipx)"
        )
    return playbooks.resolve().parent


def playbooks_dir() -> Path:
    return shipped_root() / PLAYBOOKS


def templates_dir() -> Path:
    """The shipped templates: configure's panel files are found here whatever directory the playbook is in."""
    return shipped_root() / TEMPLATES


def example_inventory() -> Path:
    return shipped_root() / EXAMPLE_INVENTORY


def playbook_names() -> list[str]:
    """The shipped playbooks by the name `ispagent run NAME` takes: install, audit, ..."""
    return sorted(path.stem for path in playbooks_dir().glob(f"*{PLAYBOOK_SUFFIX}"))


def find_playbook(given: Path) -> Path:
    """The playbook file `given` names: a file that exists, else a shipped playbook by name (`install`,
    `install.yaml`). A local file always wins over a shipped playbook of the same name."""
    if given.exists():
        return given
    text = str(given)
    name = text.removesuffix(PLAYBOOK_SUFFIX)
    if given.name == text and name in playbook_names():
        return playbooks_dir() / f"{name}{PLAYBOOK_SUFFIX}"
    raise InputError(
        f"{shown(text)}: no such playbook file, nor a shipped playbook of that name "
        f"(shipped: {', '.join(playbook_names())})"
    )
