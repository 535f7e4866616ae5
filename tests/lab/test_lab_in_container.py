"""The lab where people run it: inside a container whose / is overlayfs, and inside a chroot.

Each root is built by tests/data/roots/enter_root.sh in its own mount, network and PID namespaces
(as a container runtime would), so its lab never meets the machine's lab (no lab lock needed) and
everything it mounted goes when its PID 1 dies, also when a test fails or times out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.lab.commands import SYSTEM_PATH
from agent.lab.rootfs import ensure_rootfs

REPO = Path(__file__).resolve().parents[2]
ENTER_ROOT = REPO / "tests" / "data" / "roots" / "enter_root.sh"
LAB_DIR = "/root/lab"  # inside the root: on its / (overlayfs, or the chroot's own filesystem)
TIMEOUT = 150

if os.geteuid() != 0:
    reason = "the lab in a container or chroot needs root (namespaces, mounts)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI={os.environ['CI']}: {reason}; it would be skipped", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def rootfs() -> Path:
    """Built on the machine: inside the roots there is no network for debootstrap."""
    return ensure_rootfs()


def run_in_root(kind: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` (sh) in a fresh root of `kind` (see enter_root.sh); check nothing is left mounted."""
    base = Path(tempfile.mkdtemp(prefix="ispagent-root-"))
    try:
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "/bin/sh",
                str(ENTER_ROOT),
                kind,
                str(base),
                str(REPO),
                command,
                *_interpreter_dirs(),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8"},
        )
    finally:
        mounted = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(base) in line]
        base.rmdir()
        assert mounted == [], f"the root left mounts behind: {mounted}"


def _interpreter_dirs() -> list[str]:
    """The venv's base interpreter, when it lives outside /usr (pyenv): the chroot has only /usr."""
    prefix = Path(sys.base_prefix).resolve()
    return [] if prefix.is_relative_to("/usr") else [str(prefix)]


def facts(output: str) -> dict[str, str]:
    """The `key: value` lines DEMO_AND_DOWN prints about the root."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("@"):
            found[key[1:]] = value.strip()
    return found


DEMO_AND_DOWN = f"""
python={sys.executable}
echo "@root-fs: $(stat -f -c %T /)"
awk '$5 == "/" {{found = 1}} END {{print "@root-is-mount-point: " (found ? "yes" : "no")}}' /proc/self/mountinfo
$python -m agent demo --hosts 2 --dir {LAB_DIR}
echo "@demo-exit: $?"
echo "@hosts-fs: $(stat -f -c %T {LAB_DIR}/hosts)"
$python -m agent lab up --hosts 2 --dir {LAB_DIR}
echo "@hosts-mounts: $(grep -c ' {LAB_DIR}/hosts ' /proc/self/mountinfo)"
ssh -F {LAB_DIR}/ssh_config h1 'echo "@h1-name: $(hostname -f)"; echo "@h1-root-fs: $(stat -f -c %T /)"'
$python -m agent lab down --dir {LAB_DIR}
echo "@down-exit: $?"
echo "@mounts-left: $(grep -c ' {LAB_DIR}/' /proc/self/mountinfo)"
"""


TMPFS_SAID = (
    f"lab: {LAB_DIR} is on overlay, which cannot hold an overlay's upper layer: the hosts' disks go on a"
    f" tmpfs mounted on {LAB_DIR}/hosts until `lab down`"
)


@pytest.mark.parametrize(
    ("kind", "root_fs", "root_is_mount_point", "hosts_mounts"),
    [
        # Overlayfs takes no upper layer on overlayfs: the hosts' disks go on one tmpfs, mounted by the
        # first `lab up` only (a second one over running hosts' disks would hide them).
        ("overlay", "overlayfs", "yes", "1"),
        # The chroot's directory is on a tmpfs, which takes upper layers: nothing mounted for them.
        ("chroot", "tmpfs", "no", "0"),
    ],
)
def test_demo_passes_twice_and_lab_down_leaves_nothing_inside_a_container_root_or_a_chroot(
    kind: str, root_fs: str, root_is_mount_point: str, hosts_mounts: str
) -> None:
    done = run_in_root(kind, DEMO_AND_DOWN)
    output = done.stdout + done.stderr
    found = facts(done.stdout)
    assert (found.get("root-fs"), found.get("root-is-mount-point")) == (root_fs, root_is_mount_point), output
    assert found.get("demo-exit") == "0", output
    assert "demo: second run changed nothing" in done.stdout, output
    first, second = [line for line in done.stdout.splitlines() if line.startswith("run ") and " finished: " in line]
    assert first.endswith("2 host(s): ok 0, changed 2, failed 0, unreachable 0, skipped 0"), output
    assert second.endswith("2 host(s): ok 2, changed 0, failed 0, unreachable 0, skipped 0"), output
    assert (found.get("hosts-fs"), found.get("hosts-mounts")) == ("tmpfs", hosts_mounts), output
    assert done.stderr.splitlines().count(TMPFS_SAID) == int(hosts_mounts), output
    assert "lab: starting 0 hosts (2 already running)" in done.stderr, output
    assert (found.get("h1-name"), found.get("h1-root-fs")) == ("h1.lab.example", "overlayfs"), output
    assert (found.get("down-exit"), found.get("mounts-left")) == ("0", "0"), output
    assert "Traceback" not in output


def test_a_chroot_on_a_shared_mount_is_refused_in_one_line_before_any_host_starts() -> None:
    done = run_in_root(
        "shared-chroot",
        f"{sys.executable} -m agent lab up --hosts 1 --dir {LAB_DIR}; "
        f'echo "@up-exit: $?"; ls {LAB_DIR}/hosts; ls /run/netns 2>/dev/null; '
        f"echo \"@mounts: $(grep -c ' {LAB_DIR}/' /proc/self/mountinfo)\"",
    )
    errors = [line for line in done.stderr.splitlines() if not line.startswith("lab: ")]
    assert errors == [
        f"ispagent: error: / is not a mount point (a chroot) and the mount {LAB_DIR} is on is shared, so the"
        " hosts' mounts would spread outside the lab: enter the chroot with `unshare --mount --propagation"
        " private chroot DIR` or make DIR a mount point first (`mount --bind DIR DIR`)"
    ], done.stderr
    found = facts(done.stdout)
    assert (found.get("up-exit"), found.get("mounts")) == ("1", "0"), done.stdout
    assert "h1" not in done.stdout  # no host directory, no network namespace
