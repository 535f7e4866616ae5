"""What the control machine's root lets the lab mount: containers and chroots.

Two kinds of root need more than a plain machine does:
- In a container `/` is often an overlayfs, and overlayfs refuses an upper layer on overlayfs
  ("wrong fs type"). The hosts' layers then go on a tmpfs mounted on the lab's hosts directory.
- In a chroot `/` is not a mount point, so its propagation cannot be changed (`ip netns exec` and
  `unshare --propagation private` fail with EINVAL) and pivot_root refuses to run. Hosts are then
  entered with chroot, and their mount namespaces keep the propagation they are given. That is
  only safe when the mount the chroot sits on is not shared (otherwise every host mount would
  spread to the machine and to the other hosts), which is checked first.
Both are found out by trying, not guessed from paths or environment variables.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import LabError
from agent.lab.commands import SYSTEM_PATH

MOUNTINFO = Path("/proc/self/mountinfo")
PROBE_DIR = ".mount-probe"

# Run in a throwaway mount namespace, so nothing it mounts outlives it; it unmounts anyway, in case
# the namespace shares mounts with the lab's (the chroot case).
PROBE_SCRIPT = r"""
set -u
d=$1
mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged" "$d/bind"
if mount --bind "$d/lower" "$d/bind"; then
  cat /proc/self/mountinfo > "$d/mountinfo"
  umount "$d/bind"
fi
if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>"$d/overlay-error"; then
  umount "$d/merged"
  echo yes > "$d/overlay"
fi
"""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MountProbe:
    takes_overlay_upper: bool  # an overlay mount with its upper layer here succeeded
    shared: bool  # a mount made here propagates to other mount namespaces
    overlay_error: str


@functools.cache
def root_is_mount_point() -> bool:
    """False in a chroot: /proc/self/mountinfo lists only mounts whose mount point is reachable from
    our root, so the mount a chroot directory sits on (mounted outside it) is not listed."""
    return any(_fields(line)[4] == "/" for line in MOUNTINFO.read_text().splitlines())


def host_propagation() -> str:
    """`unshare --propagation` for a host: private, unless / cannot take a propagation change."""
    return "private" if root_is_mount_point() else "unchanged"


def host_root_switch() -> str:
    """How host_init.sh enters the host's root: pivot_root needs / to be a mount point."""
    return "pivot" if root_is_mount_point() else "chroot"


def prepare_hosts_dir(hosts_dir: Path, progress: Progress | None = None) -> None:
    """Make `hosts_dir` able to hold the hosts' overlay upper and work layers.

    Raises LabError when the lab cannot run here at all (a chroot on a shared mount).
    """
    hosts_dir.mkdir(parents=True, exist_ok=True)
    probe = probe_mounts(hosts_dir)
    if probe.shared and not root_is_mount_point():
        raise LabError(
            f"/ is not a mount point (a chroot) and the mount {hosts_dir.parent} is on is shared, so the hosts'"
            " mounts would spread outside the lab: enter the chroot with `unshare --mount --propagation private"
            " chroot DIR` or make DIR a mount point first (`mount --bind DIR DIR`)"
        )
    if probe.takes_overlay_upper:
        return
    if _is_mount_point(hosts_dir):
        raise LabError(f"{hosts_dir} cannot hold overlay layers: {probe.overlay_error or 'overlay mount failed'}")
    _mount(["-t", "tmpfs", "-o", "mode=755", "ispagent-lab", str(hosts_dir)], what=f"a tmpfs on {hosts_dir}")
    if progress:
        progress(
            f"{hosts_dir.parent} is on {_fstype(hosts_dir.parent)}, which cannot hold an overlay's upper layer:"
            f" the hosts' disks go on a tmpfs mounted on {hosts_dir} until `lab down`"
        )


def probe_mounts(directory: Path) -> MountProbe:
    """Try, in a throwaway mount namespace, an overlay with its upper layer in `directory` and a
    bind mount there (to read whether mounts made there are shared)."""
    probe = directory / PROBE_DIR
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(exist_ok=True)  # a killed probe may have left it
    try:
        done = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                host_propagation(),
                "/bin/sh",
                "-c",
                PROBE_SCRIPT,
                "probe",
                str(probe),
            ],
            capture_output=True,
            text=True,
            env={"PATH": SYSTEM_PATH},
            check=False,
        )
        if not (probe / "mountinfo").exists():
            detail = done.stderr.strip().splitlines()
            raise LabError(f"cannot mount in {directory}: {detail[-1] if detail else f'exit code {done.returncode}'}")
        bind = _escape(str(probe / "bind"))
        shared = any(
            _fields(line)[4] == bind and any(tag.startswith("shared:") for tag in _optional_fields(line))
            for line in (probe / "mountinfo").read_text().splitlines()
        )
        error_file = probe / "overlay-error"
        error = error_file.read_text().strip().splitlines() if error_file.exists() else []
        return MountProbe((probe / "overlay").exists(), shared, error[0] if error else "")
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _is_mount_point(path: Path) -> bool:
    target = _escape(str(path))
    return any(_fields(line)[4] == target for line in MOUNTINFO.read_text().splitlines())


def _fstype(path: Path) -> str:
    """The filesystem type of the mount `path` is on (the longest listed mount point above it)."""
    best, fstype = "", "unknown"
    text = str(path.resolve())
    for line in MOUNTINFO.read_text().splitlines():
        mountpoint = _fields(line)[4].replace("\\040", " ")
        inside = text == mountpoint or text.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, fstype = mountpoint, line.split(" - ", 1)[1].split()[0]
    return fstype


def _fields(line: str) -> list[str]:
    return line.split(" - ", 1)[0].split()


def _optional_fields(line: str) -> list[str]:
    return _fields(line)[6:]


def _escape(path: str) -> str:
    """A path as /proc/self/mountinfo writes it."""
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        path = path.replace(char, code)
    return path


def _mount(args: list[str], *, what: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, env={"PATH": SYSTEM_PATH}, check=False)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise LabError(f"mounting {what} failed: {detail[-1] if detail else f'exit code {done.returncode}'}")
