"""Files on a host: make one hold given bytes and mode, in one round trip, changing nothing when it does."""

from __future__ import annotations

import difflib
import hashlib
import posixpath
from dataclasses import dataclass

from agent.errors import StepFailed
from agent.runner.context import HostContext
from agent.runner.registry import StepResult, changed, failed, ok
from agent.transport.ssh import command_line


def parse_mode(value: object) -> int:
    """File modes as quoted octal strings ("0644", "644").

    Numbers are refused: YAML reads an unquoted 0644 as 420 and 644 as decimal 644, and the two
    cannot be told apart once parsed.
    """
    if not isinstance(value, str):
        raise ValueError("write modes as quoted octal strings, e.g. '0644'")
    text = value.strip()
    if not text or any(c not in "01234567" for c in text) or int(text, 8) > 0o7777:
        raise ValueError("mode must be an octal string such as '0644'")
    return int(text, 8)


def check_remote_path(value: str) -> str:
    if not posixpath.isabs(value) or value.endswith("/"):
        raise ValueError("dest must be an absolute file path on the host, e.g. /etc/motd")
    return value


def ensure_file(ctx: HostContext, dest: str, content: bytes, mode: int, *, with_diff: bool = False) -> StepResult:
    """Make `dest` hold `content` with `mode`; changes nothing when it already does.

    One round trip reads the current state; the upload happens only when something differs.
    In dry-run nothing is written and the result says what would change (with a diff on request).
    """
    state = _remote_state(ctx, dest, fetch_text=with_diff and ctx.dry_run)
    current_mode, current_hash, current_text = state.mode, state.sha256, state.text
    wanted_hash = hashlib.sha256(content).hexdigest()
    differences = []
    if current_hash is None:
        differences.append("created" if state.parent_exists else f"created with {posixpath.dirname(dest)}")
    elif current_hash != wanted_hash:
        differences.append("content")
    if current_mode is not None and current_mode != mode:
        differences.append(f"mode {current_mode:o} -> {mode:o}")
    if not differences:
        return ok(f"{dest} up to date")
    what = ", ".join(differences)
    if ctx.dry_run:
        data = {"diff": _diff(dest, current_text, content)} if with_diff else {}
        return changed(f"would update {dest} ({what})", **data)
    if current_hash == wanted_hash:
        result = ctx.connection.run(["chmod", f"{mode:o}", dest])
        if not result.ok:
            return failed(f"cannot chmod {dest}: {result.error_line()}")
    else:
        ctx.connection.put(content, dest, mode, make_parents=not state.parent_exists)
    return changed(f"{dest} {what}")


@dataclass(frozen=True)
class _RemoteFile:
    mode: int | None = None
    sha256: str | None = None
    text: str | None = None  # only when asked for (dry-run diffs)
    parent_exists: bool = True


def _remote_state(ctx: HostContext, dest: str, *, fetch_text: bool) -> _RemoteFile:
    quoted = command_line([dest])
    parent = command_line([posixpath.dirname(dest)])
    read = f"cat -- {quoted}" if fetch_text else f"sha256sum -- {quoted}"
    result = ctx.connection.run(
        f"if [ -f {quoted} ]; then stat -c %a -- {quoted} && {read}; "
        f"elif [ -d {parent} ]; then echo absent; else echo no-parent; fi",
        log_output=False,
    )
    if not result.ok:
        raise StepFailed(f"cannot read {dest}: {result.error_line()}")
    if result.stdout.strip() in ("absent", "no-parent"):
        return _RemoteFile(parent_exists=result.stdout.strip() == "absent")
    mode_line, _, rest = result.stdout.partition("\n")
    if fetch_text:
        return _RemoteFile(int(mode_line, 8), hashlib.sha256(rest.encode()).hexdigest(), rest)
    return _RemoteFile(int(mode_line, 8), rest.split(" ", 1)[0])


def _diff(dest: str, before: str | None, after: bytes) -> str:
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True),
        after.decode(errors="replace").splitlines(keepends=True),
        fromfile=f"{dest} (on host)" if before is not None else "/dev/null",
        tofile=f"{dest} (wanted)",
    )
    return "".join(lines)
