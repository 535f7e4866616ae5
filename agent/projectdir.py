"""`ispagent init DIR`: a directory to edit, made from what ispagent ships, as `ansible-galaxy init` makes a role.

DIR gets `inventory.yaml` (the commented example inventory), `playbooks/` and `templates/`. A playbook run
from DIR/playbooks/ finds its templates in DIR/templates/ first, so an edited template wins over the shipped one.

Nothing is overwritten: DIR must be new or an empty directory. The files are written into a staging
directory inside DIR (so on DIR's filesystem, and nobody else's to plant links in), then moved up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InputError
from agent.secrets import shown
from agent.shipped import (
    PLAYBOOKS,
    example_inventory,
    playbooks_dir,
    shipped_root,
    templates_dir,
)

INVENTORY_NAME = "inventory.yaml"
INVENTORY_MODE = 0o600  # it is where activation keys and panel passwords will be written
FILE_MODE = 0o644
STAGING_PREFIX = ".ispagent-init-"


@dataclass(frozen=True)
class ProjectDir:
    """What `write_project_dir` made."""

    path: Path
    files: tuple[Path, ...]  # relative to `path`

    @property
    def inventory(self) -> Path:
        return self.path / INVENTORY_NAME

    @property
    def playbooks(self) -> Path:
        return self.path / PLAYBOOKS


def shipped_files() -> list[tuple[Path, Path]]:
    """(source, path relative to DIR) of every file `init` writes."""
    root = shipped_root()
    files = [(example_inventory(), Path(INVENTORY_NAME))]
    for directory in (playbooks_dir(), templates_dir()):
        files += [
            (source, source.relative_to(root))
            for source in sorted(directory.rglob("*"))
            if source.is_file() and not source.is_symlink() and not _hidden(source.relative_to(root))
        ]
    return files


def write_project_dir(target: Path) -> ProjectDir:
    """Write the inventory, playbooks and templates into `target` (new, or an empty directory).

    Every refusal is one InputError line; after one, nothing is left behind."""
    files = shipped_files()
    created = _claim(target)
    staging: Path | None = None
    moved: list[Path] = []
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
        for source, relative in files:
            _copy(source, staging / relative, INVENTORY_MODE if relative == Path(INVENTORY_NAME) else FILE_MODE)
        for entry in sorted({relative.parts[0] for _, relative in files}):
            moved.append(_move_up(staging / entry, target / entry, target))
        staging.rmdir()
    except (OSError, InputError) as error:
        _undo(target if created else None, [*moved, *([staging] if staging else [])])
        if isinstance(error, InputError):
            raise
        raise InputError(f"{shown(str(target))}: cannot write: {error.strerror or error}") from None
    return ProjectDir(target, tuple(relative for _, relative in files))


def _claim(target: Path) -> bool:
    """Make `target` or accept it empty; True when it was made here."""
    try:
        if target.is_symlink():
            raise InputError(
                f"{shown(str(target))}: is a symbolic link; init follows none (give a new or empty directory)"
            )
        target.mkdir()  # not its parents: after a refusal, nothing init made is left anywhere
        return True
    except FileExistsError:
        if not target.is_dir():
            raise InputError(
                f"{shown(str(target))}: exists and is not a directory; init writes a new or empty directory"
            ) from None
        if any(target.iterdir()):
            raise InputError(
                f"{shown(str(target))}: exists and is not empty; init overwrites nothing "
                "(give a new or empty directory)"
            ) from None
        return False
    except FileNotFoundError:
        raise InputError(f"{shown(str(target))}: its parent directory does not exist") from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InputError(f"{shown(str(target))}: cannot make the directory: {reason}") from None


def _copy(source: Path, destination: Path, mode: int) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with open(descriptor, "wb") as file:
        file.write(data)


def _move_up(staged: Path, destination: Path, target: Path) -> Path:
    # rename() would replace an empty directory put there since _claim looked: look again just before.
    if os.path.lexists(destination):
        raise InputError(
            f"{shown(str(target))}: {shown(destination.name)} appeared while init wrote; nothing was overwritten"
        )
    staged.rename(destination)
    return destination


def _undo(created: Path | None, written: list[Path]) -> None:
    """Remove what init wrote: the directory it made, or in a directory that was there, its own entries."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for path in written:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _hidden(relative: Path) -> bool:
    # Editor backups and caches in a checkout are not part of what ships.
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
