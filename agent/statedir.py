"""Where ispagent keeps what outlives a process: run journals, the ledger, locks.

Low level on purpose: the journal and the ledger both start from here and import nothing else of
ispagent's.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agent.errors import StateDirError
from agent.userpath import expand_home

STATE_DIR_ENV = "ISPAGENT_STATE_DIR"


def default_state_dir() -> Path:
    """$ISPAGENT_STATE_DIR, else $XDG_STATE_HOME/ispagent, else ~/.local/state/ispagent."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return expand_home(env)
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return expand_home(base) / "ispagent"


# A state dir is where a root cron job deletes directories and appends host output: whoever can
# write it (or plant a link in it) could steer those writes and deletions anywhere.
STATE_DIR_MODE = 0o700
MAX_STATE_FILE_BYTES = 64 * 1024 * 1024  # a run.json or events.jsonl larger than this was not written by us


def ensure_state_dir(path: Path, *, create: bool = True) -> bool:
    """Check `path` is a state dir this user may trust; True when it exists (with `create`, it always will).

    Created 0700 when missing; refused in one line when it is not a directory, someone else owns it,
    or group or others can write it.
    """
    if create:
        try:
            path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # not a directory: said below
        except OSError as error:
            raise StateDirError(
                f"state dir {path}: cannot create it ({error.strerror or error}); "
                "give --state-dir a directory you can write"
            ) from None
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    except OSError as error:
        raise StateDirError(f"state dir {path}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(
            f"state dir {path} is not a directory, so ispagent cannot write there; give --state-dir a directory"
        )
    if info.st_uid != os.geteuid():
        raise StateDirError(
            f"state dir {path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): "
            f"ispagent trusts only its own state; chown it or give --state-dir a directory of your own"
        )
    if info.st_mode & 0o022:
        raise StateDirError(
            f"state dir {path} can be written by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"ispagent trusts only its own state; fix it with: chmod go-w {path}"
        )
    return True


def make_state_dirs(root: Path, relative: str) -> None:
    """Create root/relative (0700), each part below `root` a real directory, never a symbolic link."""
    os.close(_walk(root, Path(relative).parts, relative, make=True))


def open_state_file(root: Path, relative: str, flags: int, mode: int = 0o600) -> int:
    """A descriptor of the regular file root/relative, reached without following a link at any part below `root`.

    A FIFO or a device is refused before it can block or flood a read; the descriptor is blocking.
    """
    parts = Path(relative).parts
    directory = _walk(root, parts[:-1], relative, make=bool(flags & os.O_CREAT))
    try:
        fd = os.open(
            parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode, dir_fd=directory
        )
    except FileNotFoundError:
        raise
    except OSError as error:
        raise _refused(root, relative, error) from None
    finally:
        os.close(directory)
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise StateDirError(
            f"state dir {root}: {relative} is not a regular file; ispagent writes and reads only "
            "its own files there: remove it"
        )
    os.set_blocking(fd, True)
    return fd


def read_state_file(root: Path, relative: str) -> bytes:
    """The bytes of root/relative (see `open_state_file`), at most MAX_STATE_FILE_BYTES."""
    with os.fdopen(open_state_file(root, relative, os.O_RDONLY), "rb") as handle:
        data = handle.read(MAX_STATE_FILE_BYTES + 1)
    if len(data) > MAX_STATE_FILE_BYTES:
        raise StateDirError(
            f"state dir {root}: {relative} is larger than {MAX_STATE_FILE_BYTES // 2**20} MiB; "
            "ispagent did not write it: remove it"
        )
    return data


def open_appending(path: Path) -> int:
    """`path` opened to append, created 0600: never through a symbolic link, and only a regular file."""
    try:
        fd = os.open(
            path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
            0o600,
        )
    except FileNotFoundError:
        raise
    except OSError as error:
        raise _refused(path.parent, path.name, error) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateDirError(f"{path} is not a regular file; ispagent appends only to its own files: remove it")
    os.set_blocking(fd, True)
    return fd


def _walk(root: Path, parts: tuple[str, ...], relative: str, *, make: bool) -> int:
    """A descriptor of root/parts, each part opened under the last with O_NOFOLLOW (made 0700 with `make`)."""
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if part in ("..", "/"):
                raise StateDirError(f"state dir {root}: {relative} leaves the state dir")
            if make:
                try:
                    os.mkdir(part, STATE_DIR_MODE, dir_fd=directory)
                except FileExistsError:
                    pass
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            os.close(directory)
            directory = below
    except FileNotFoundError:
        os.close(directory)
        raise
    except OSError as error:
        os.close(directory)
        raise _refused(root, relative, error) from None
    except BaseException:
        os.close(directory)
        raise
    return directory


def _refused(root: Path, relative: str, error: OSError) -> StateDirError:
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return StateDirError(
            f"state dir {root}: {relative} is (or passes through) a symbolic link or another "
            "non-directory; ispagent follows no links in its state dir: remove it"
        )
    if error.errno == errno.ENXIO:  # opening a FIFO without a reader, without blocking
        return StateDirError(f"state dir {root}: {relative} is a FIFO or a device, not a regular file: remove it")
    return StateDirError(
        f"state dir {root}: {relative}: {error.strerror or error}; fix it, or give --state-dir another directory"
    )
