"""The shared Debian 12 root filesystem every lab host mounts read-only as its overlay's lower layer.

Built once with debootstrap, prepared (deploy user, sshd config, no host keys), then cached under
/var/cache/ispagent/ as a directory and as a tar.zst (which unpacks in about a second, so a CI cache
or a second machine can skip debootstrap). Builds go into a temporary directory that is renamed
into place at the end: a killed build never leaves a half-made cache behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import LabError
from agent.lab.commands import require_tools, run

CACHE_DIR = Path("/var/cache/ispagent")
# Bump when the preparation below changes, so older caches are not reused.
ROOTFS_NAME = "rootfs-bookworm-lab-v1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "ISPAGENT_DEBIAN_MIRROR"
INCLUDED_PACKAGES = "openssh-server,python3,ca-certificates,iproute2,procps,sudo"
DEPLOY_USER = "deploy"

SSHD_LAB_CONFIG = """\
# Written by ispagent's lab. Included before the rest of sshd_config, so these values win.
HostKey /etc/ssh/ssh_host_ed25519_key
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""

Populate = Callable[[Path], None]
Progress = Callable[[str], None]


def ensure_rootfs(
    cache_dir: Path = CACHE_DIR,
    *,
    populate: Populate | None = None,
    progress: Progress | None = None,
) -> Path:
    """Return the cached, prepared rootfs directory, building it first if needed.

    `populate` fills an empty directory with a Debian system; the default runs debootstrap against
    the mirror in $ISPAGENT_DEBIAN_MIRROR. Tests and developers may pass another one.
    """
    say = progress or (lambda message: None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rootfs = cache_dir / ROOTFS_NAME
    archive = cache_dir / f"{ROOTFS_NAME}.tar.zst"
    with _locked(cache_dir / f"{ROOTFS_NAME}.lock"):
        if rootfs.is_dir():
            return rootfs
        _remove_leftover_builds(cache_dir)
        if archive.is_file():
            say(f"unpacking cached rootfs {archive}")
            _install(rootfs, lambda tmp: run(["tar", "--zstd", "-xpf", str(archive), "-C", str(tmp)]))
            return rootfs
        say("building the Debian 12 rootfs (debootstrap, about a minute, once per machine)")
        _install(rootfs, lambda tmp: _build(tmp, populate or debootstrap, archive))
        say(f"rootfs cached in {rootfs} and {archive}")
        return rootfs


def debootstrap(target: Path) -> None:
    """Install a minimal Debian 12 with sshd, python3 and sudo into the empty directory `target`."""
    require_tools("debootstrap")
    mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    run(
        ["debootstrap", "--variant=minbase", f"--include={INCLUDED_PACKAGES}", "bookworm", str(target), mirror],
        what=f"debootstrap from {mirror}",
    )


def prepare_rootfs(root: Path) -> None:
    """Turn a fresh debootstrap into the lab's base: no host keys, a deploy user, key-only sshd."""
    if not (root / "usr/sbin/sshd").exists():
        raise LabError(f"{root} has no /usr/sbin/sshd: the rootfs needs the openssh-server package")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    run(["chroot", str(root), "apt-get", "clean"], what="apt-get clean in the rootfs")
    if DEPLOY_USER not in (root / "etc/passwd").read_text():
        # '*' rather than useradd's locked '!': sshd refuses key logins to locked accounts.
        run(
            [
                "chroot",
                str(root),
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--groups",
                "sudo",
                "--password",
                "*",
                DEPLOY_USER,
            ],
            what="useradd deploy",
        )
    _write(root / "etc/sudoers.d/ispagent-deploy", f"{DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    _write(root / "etc/ssh/sshd_config.d/ispagent-lab.conf", SSHD_LAB_CONFIG, 0o644)
    deploy_home = root / "home" / DEPLOY_USER
    for home in (root / "root", deploy_home):
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        owner = home.stat()
        os.chown(ssh_dir, owner.st_uid, owner.st_gid)
    # Each host gets its own in its overlay; an empty one here would be shared by all.
    (root / "etc/machine-id").unlink(missing_ok=True)


def _build(tmp: Path, populate: Populate, archive: Path) -> None:
    populate(tmp)
    prepare_rootfs(tmp)
    partial = archive.with_name(f".{archive.name}.partial")
    run(["tar", "--zstd", "-cpf", str(partial), "-C", str(tmp), "."], what="packing the rootfs")
    partial.rename(archive)


def _install(final: Path, fill: Callable[[Path], object]) -> None:
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.build-"))
    try:
        fill(tmp)
        tmp.chmod(0o755)
        tmp.rename(final)
    except BaseException:
        _remove_build(tmp)
        raise


def _remove_leftover_builds(cache_dir: Path) -> None:
    """Remove what a killed build left (we hold the lock, so nobody else is building)."""
    for leftover in cache_dir.glob(f".{ROOTFS_NAME}*"):
        if leftover.is_dir():
            _remove_build(leftover)
        else:
            leftover.unlink()


def _remove_build(tmp: Path) -> None:
    # debootstrap mounts /proc and /sys inside its target; never rm -rf through a live mount.
    for mountpoint in sorted(_mounts_under(tmp), reverse=True):
        run(["umount", "--lazy", mountpoint], what=f"unmounting {mountpoint}")
    if _mounts_under(tmp):
        raise LabError(f"{tmp} still has mounts after a failed build: unmount them and remove it")
    shutil.rmtree(tmp, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mountpoints = []
    for line in Path("/proc/mounts").read_text().splitlines():
        mountpoint = line.split()[1].replace("\\040", " ")
        if mountpoint.startswith(prefix):
            mountpoints.append(mountpoint)
    return mountpoints


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


__all__ = ["ensure_rootfs", "debootstrap", "prepare_rootfs", "CACHE_DIR", "ROOTFS_NAME"]
