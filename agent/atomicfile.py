"""Files written whole or not at all: readers (and a rerun after a crash) never see half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(
    path: Path, data: bytes | str, mode: int = 0o644, *, owner: tuple[int, int] | None = None, durable: bool = True
) -> None:
    """Write `data` to a temp file beside `path` and rename it over `path`.

    `durable` fsyncs before the rename (journals, reports); files that are thrown away with their
    directory (a lab host's disk) skip it: bringing up 100 hosts writes hundreds of them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if owner is not None:
            os.chown(temp, *owner)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_scratch_file(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """`write_atomic` without the fsync, for files that live and die with a lab host."""
    write_atomic(path, text, mode, owner=owner, durable=False)
