"""The Debian 12 image Vagrant's docker provider starts, made offline from the lab's own rootfs.

No registry is pulled from: one tar of ROOTFS with EXTRA laid over it, `| docker import`. A
`docker build` would do the same in several layers, and with the vfs storage driver each layer is a
full copy of the rootfs (about two minutes here, against ten seconds for the import). EXTRA holds
what makes the rootfs a Vagrant box: a non-root `vagrant` user with password-less sudo and Vagrant's
well-known insecure public key (Vagrant swaps it for a key of its own on the first `vagrant up`, as
with any box), and apt pointed at the lab mirror. Host keys are made when a container first starts
(`ssh-keygen -A`), so every `vagrant up` after a `vagrant destroy` gets new ones, as real boxes do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab import services
from agent.lab.dockerd import DOCKER, DockerDaemon

# Bump the tag when what goes into the image changes: `lab docker up` builds the tag that is missing.
IMAGE = "ispagent/vagrant-debian12:v1"
BOX_USER = "vagrant"
VAGRANT_INSECURE_KEY = Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub")
# PID 1 of each container; -e: sshd logs to `docker logs`.
COMMAND = '["/bin/sh", "-c", "ssh-keygen -A >/dev/null && mkdir -p -m 755 /run/sshd && exec /usr/sbin/sshd -D -e"]'


@dataclass(frozen=True)
class Accounts:
    """The rootfs's /etc/passwd, group, shadow and gshadow, as text."""

    passwd: str
    group: str
    shadow: str
    gshadow: str


def with_box_user(accounts: Accounts, user: str = BOX_USER) -> tuple[Accounts, int]:
    """`accounts` with `user` added (its own group, member of sudo, no password: key logins only),
    and the user's uid. Unchanged if the user is there already."""
    existing = {line.split(":")[0]: line for line in accounts.passwd.splitlines() if line}
    if user in existing:
        return accounts, int(existing[user].split(":")[2])
    uid = _free_id(accounts.passwd, accounts.group)
    # '*' rather than '!': sshd refuses key logins to locked accounts.
    return Accounts(
        passwd=_append(accounts.passwd, f"{user}:x:{uid}:{uid}:Vagrant box user:/home/{user}:/bin/bash"),
        group=_append(_add_member(accounts.group, "sudo", user), f"{user}:x:{uid}:"),
        shadow=_append(accounts.shadow, f"{user}:*:19000:0:99999:7:::"),
        gshadow=_append(_add_member(accounts.gshadow, "sudo", user), f"{user}:!::"),
    ), uid


def box_files(rootfs: Path, extra: Path, mirror_address: str, public_key: str) -> None:
    """Write into the empty directory `extra` the files laid over `rootfs` to make the box."""
    names = ("passwd", "group", "shadow", "gshadow")
    accounts = Accounts(*((rootfs / "etc" / name).read_text() for name in names))
    accounts, uid = with_box_user(accounts)
    _mkdir_like(rootfs, extra, ".", "etc", "etc/apt", "etc/sudoers.d", "home")
    for name, mode in zip(names, (0o644, 0o644, 0o640, 0o640)):
        source = (rootfs / "etc" / name).stat()
        write_scratch_file(extra / "etc" / name, getattr(accounts, name), mode, owner=(source.st_uid, source.st_gid))
    write_scratch_file(extra / f"etc/sudoers.d/{BOX_USER}", f"{BOX_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    distribution = services.distribution_url(mirror_address)
    write_scratch_file(extra / "etc/apt/sources.list", f"deb {distribution} bookworm main\n")
    home = extra / "home" / BOX_USER
    for directory, mode in ((home, 0o755), (home / ".ssh", 0o700)):
        directory.mkdir()
        directory.chmod(mode)
        shutil.chown(directory, uid, uid)
    write_scratch_file(home / ".ssh/authorized_keys", public_key.strip() + "\n", 0o600, owner=(uid, uid))


def ensure_image(daemon: DockerDaemon, rootfs: Path, mirror_address: str, work_dir: Path) -> bool:
    """Import IMAGE into `daemon` unless it has it. True if it was built now."""
    if daemon.docker("images", "-q", IMAGE).strip():
        return False
    if not VAGRANT_INSECURE_KEY.is_file():
        raise LabError(f"{VAGRANT_INSECURE_KEY} is missing: apt-get install vagrant (Debian's 2.3.4)")
    work_dir.mkdir(parents=True, exist_ok=True)
    extra = Path(tempfile.mkdtemp(dir=work_dir, prefix="box-files-"))
    try:
        box_files(rootfs, extra, mirror_address, VAGRANT_INSECURE_KEY.read_text())
        _import(daemon, rootfs, extra)
    finally:
        shutil.rmtree(extra, ignore_errors=True)
    return True


def _import(daemon: DockerDaemon, rootfs: Path, extra: Path) -> None:
    importer = subprocess.Popen(
        [str(DOCKER), "import", "--change", f"CMD {COMMAND}", "--change", "EXPOSE 22", "-", IMAGE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, **daemon.env()),
    )
    try:
        write_layer(importer.stdin, rootfs, extra)
    except BrokenPipeError:
        pass  # docker gave up: its message says why
    finally:
        importer.stdin.close()
    error = importer.stderr.read()
    importer.stdout.read()
    if importer.wait():
        lines = error.decode(errors="replace").strip().splitlines()
        raise LabError(f"importing {IMAGE} failed: {lines[-1] if lines else importer.returncode}")


def write_layer(stream: BinaryIO, rootfs: Path, extra: Path) -> None:
    """One tar of `rootfs` with `extra` laid over it, each path once (docker import refuses duplicates)."""
    overlay = sorted(path.relative_to(extra) for path in extra.rglob("*"))
    replaced = {f"./{rel}" for rel in overlay if not (extra / rel).is_dir()}
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        tar.add(rootfs, arcname=".", filter=lambda member: None if member.name in replaced else _numeric(member))
        for rel in overlay:
            if (extra / rel).is_dir() and (rootfs / rel).is_dir():
                continue
            tar.add(extra / rel, arcname=f"./{rel}", recursive=False, filter=_numeric)


def _numeric(member: tarfile.TarInfo) -> tarfile.TarInfo:
    # The image's own /etc/passwd decides who owns what, not this machine's names.
    member.uname = member.gname = ""
    return member


def _free_id(passwd: str, group: str) -> int:
    taken = {int(line.split(":")[2]) for text in (passwd, group) for line in text.splitlines() if line.count(":") >= 2}
    return next(n for n in range(1000, 60000) if n not in taken)


def _append(text: str, line: str) -> str:
    return text.rstrip("\n") + "\n" + line + "\n"


def _add_member(text: str, group: str, user: str) -> str:
    lines = []
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == group and user not in fields[-1].split(","):
            fields[-1] = ",".join(filter(None, [*fields[-1].split(","), user]))
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _mkdir_like(rootfs: Path, extra: Path, *relative: str) -> None:
    """Directories in EXTRA with the rootfs's owner and mode: an imported directory's header wins."""
    for rel in relative:
        source = (rootfs / rel).stat()
        target = extra / rel
        target.mkdir(exist_ok=True)
        shutil.chown(target, source.st_uid, source.st_gid)
        target.chmod(source.st_mode & 0o7777)
