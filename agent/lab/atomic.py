"""Writing a file so that a reader (or a crash) never sees half of it: temporary name, then rename."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    if owner is not None:
        os.chown(tmp, *owner)
    os.chmod(tmp, mode)
    os.rename(tmp, path)
