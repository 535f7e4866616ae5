"""The per-host log of remote commands and their output, with every secret masked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.errors import StateDirError
from agent.secrets import escape_controls, mask
from agent.statedir import open_appending


class HostLog:
    """Appends what happens on one host to `path`; `echo` (for -v) receives the same masked lines."""

    def __init__(self, path: Path | None, echo: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.echo = echo
        self._file = None
        self._lock = threading.Lock()
        if path is not None:
            # The journal made hosts/ a real directory; a planted hosts/NAME.log link is refused here.
            self._file = open(path, "a", encoding="utf-8", opener=lambda name, _: open_appending(Path(name)))

    def write(self, kind: str, text: str) -> None:
        if not text:
            return
        stamp = time.strftime("%H:%M:%S")
        # Escaped as on the terminal: `cat` or `tail -f` of a log must not run a host's escape sequences.
        lines = [f"{stamp} {kind} {escape_controls(line)}" for line in mask(text).rstrip("\n").split("\n")]
        block = "\n".join(lines) + "\n"
        with self._lock:
            if self._file is not None:
                try:
                    self._file.write(block)
                    self._file.flush()
                except OSError as error:  # a full disk: the run stops (see the worker), this host with it
                    raise StateDirError(
                        f"host log {self.path}: cannot write ({error.strerror or error}): free space "
                        "or fix it, then finish with `ispagent run --resume RUN_ID`"
                    ) from None
        if self.echo is not None:
            for line in lines:
                self.echo(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
