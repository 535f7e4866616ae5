"""The emulator's private files in its state directory (credentials, admin token, faults)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, 0600, atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def read_or_create(path: Path, default: str) -> str:
    """The text of `path`, written with `default` first if it does not exist (a restart keeps it)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        write_private(path, default + "\n")
        return default
