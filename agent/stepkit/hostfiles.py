"""Files on a host: make one hold given bytes and mode, in one round trip, changing nothing when it does."""

from __future__ import annotations

import difflib
import hashlib
import posixpath
from dataclasses import dataclass
from typing import Annotated

from agent.errors import StepFailed, TransportError
from agent.laxvalues import string
from agent.runner.context import HostContext
from agent.runner.params import ReadWith
from agent.runner.registry import StepParams, StepResult, changed, failed, ok
from agent.transport.filewrite import staging_path, store_data
from agent.transport.quoting import command_line


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


def check_remote_path(value: object) -> str:
    value = string(value)
    if not posixpath.isabs(value) or value.endswith("/"):
        raise ValueError("dest must be an absolute file path on the host, e.g. /etc/motd")
    return value


class FileParams(StepParams):
    """A local `src` made into the host's file `dest` with `mode` (the upload and template steps)."""

    src: str
    dest: Annotated[str, ReadWith(check_remote_path)]
    mode: Annotated[int, ReadWith(parse_mode)] = 0o644

    def local_files(self) -> dict[str, str]:
        return {"src": self.src}


# Content up to this size goes with the state check, in one command, even when the file turns out
# to be up to date: it fits in an SSH channel's window, so sending it never waits for the host.
# Larger content is sent only after a check found it differs.
INLINE_BYTES = 64 * 1024


def ensure_file(ctx: HostContext, dest: str, content: bytes, mode: int, *, with_diff: bool = False) -> StepResult:
    """Make `dest` hold `content` with `mode`; changes nothing when it already does.

    A file up to INLINE_BYTES is checked and, where it differs, written by one command (the
    host compares the bytes and the mode itself); a larger one is checked first and uploaded
    only when it differs. In dry-run nothing is written and the result says what would change (with
    a diff on request).
    """
    wanted_hash = hashlib.sha256(content).hexdigest()
    if not ctx.dry_run and len(content) <= INLINE_BYTES:
        return _check_and_write(ctx, dest, content, mode, wanted_hash)
    state = _remote_state(ctx, dest, fetch_text=with_diff and ctx.dry_run)
    what = _differences(dest, state, wanted_hash, mode)
    if not what:
        return ok(f"{dest} up to date")
    if ctx.dry_run:
        data = {"diff": _diff(dest, state.text, content)} if with_diff else {}
        return changed(f"would update {dest} ({what})", **data)
    if state.sha256 == wanted_hash:
        result = ctx.connection.run(["chmod", f"{mode:o}", dest])
        if not result.ok:
            return failed(f"cannot chmod {dest}: {result.error_line()}")
    else:
        ctx.connection.put(content, dest, mode, make_parents=not state.parent_exists)
    return changed(f"{dest} {what}")


def _differences(dest: str, state: _RemoteFile, wanted_hash: str, mode: int) -> str:
    """What differs between the file on the host and the wanted one ("" when nothing does)."""
    differences = []
    if state.sha256 is None:
        differences.append("created" if state.parent_exists else f"created with {posixpath.dirname(dest)}")
    elif state.sha256 != wanted_hash:
        differences.append("content")
    if state.mode is not None and state.mode != mode:
        differences.append(f"mode {state.mode:o} -> {mode:o}")
    return ", ".join(differences)


def _check_and_write(ctx: HostContext, dest: str, content: bytes, mode: int, wanted_hash: str) -> StepResult:
    """One command: the content (its data) goes to a staging file, which replaces `dest` only if
    the two differ; if they are the same, only a wrong mode is fixed.

    The host hashes both files and compares the hashes itself (sha256sum: coreutils, on every
    host; cmp is not on every minimal install), so no hash of the content appears in a command
    line or the host log. It prints the state first ("absent", "no-parent" or the mode), then "same" or
    "differs": what it printed tells which part failed when the command fails.
    """
    quoted, parent = command_line([dest]), command_line([posixpath.dirname(dest)])
    staging = command_line([staging_path(dest)])
    result = ctx.connection.run(
        f'if [ -f {quoted} ]; then m=$(stat -c %a -- {quoted}) || exit 1; echo "$m"; '
        f"elif [ -d {parent} ]; then m=; echo absent; else m=; echo no-parent; mkdir -p -- {parent} || exit 1; fi; "
        f"{store_data(staging, mode)} || {{ rm -f -- {staging}; exit 1; }}; "
        f'if [ -n "$m" ]; then a=$(sha256sum < {staging}) && b=$(sha256sum < {quoted}) || {{ rm -f -- {staging}; exit 1; }}; '
        f'if [ "$a" = "$b" ]; then echo same; rm -f -- {staging}; [ "$m" = {mode:o} ] || chmod {mode:o} -- {quoted}; exit; fi; '
        f"echo differs; fi; "
        f"mv -fT -- {staging} {quoted} || {{ rm -f -- {staging}; exit 1; }}",
        data=content,
        log_output=False,
    )
    printed = result.stdout.split()
    if not printed:
        raise StepFailed(f"cannot read {dest}: {result.error_line()}")
    verdict = printed[1] if len(printed) > 1 else None
    if printed[0] in ("absent", "no-parent"):
        state = _RemoteFile(parent_exists=printed[0] == "absent")
    else:
        state = _RemoteFile(int(printed[0], 8), wanted_hash if verdict == "same" else "(differs)")
    if not result.ok:
        if verdict == "same":
            return failed(f"cannot chmod {dest}: {result.error_line()}")
        raise TransportError(f"{ctx.host.name}: upload to {dest} failed: {result.error_line()}")
    what = _differences(dest, state, wanted_hash, mode)
    return changed(f"{dest} {what}") if what else ok(f"{dest} up to date")


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
    if fetch_text:
        mode_line, _, rest = result.stdout.partition("\n")
        if mode_line.strip() in ("absent", "no-parent"):
            return _RemoteFile(parent_exists=mode_line.strip() == "absent")
        return _RemoteFile(int(mode_line, 8), hashlib.sha256(rest.encode()).hexdigest(), rest)
    return _parse_state(result.stdout)


def _parse_state(stdout: str) -> _RemoteFile:
    """The state a check prints: "absent", "no-parent", or the mode and `sha256sum`'s line."""
    first, _, rest = stdout.partition("\n")
    if first.strip() in ("absent", "no-parent"):
        return _RemoteFile(parent_exists=first.strip() == "absent")
    return _RemoteFile(int(first, 8), rest.split(" ", 1)[0].strip())


def _diff(dest: str, before: str | None, after: bytes) -> str:
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True),
        after.decode(errors="replace").splitlines(keepends=True),
        fromfile=f"{dest} (on host)" if before is not None else "/dev/null",
        tofile=f"{dest} (wanted)",
    )
    return "".join(lines)
