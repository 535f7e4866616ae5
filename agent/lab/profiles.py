"""Lab host profiles: hosts put in one situation each that the real installer treats specially.

A profile is applied when its host is prepared: files written into the host's overlay upper layer,
files bind-mounted over /proc inside its mount namespace (as lxcfs does), or a fault of the lab's
mirror for the host's address. Changing a host's profile recreates the host from scratch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab.mirror import FAULTS as MIRROR_FAULTS
from agent.lab.mirror import write_host_faults
from agent.lab.rootfs import DEPLOY_USER

EMULATOR_PANEL = Path(__file__).with_name("installer_emulator") / "mgr5"
LOW_RAM_MB = 488  # the figure of the real installer's "You have to low memory: 488"
RAM_PROFILES = {"low-ram": LOW_RAM_MB, "ram-512": 512, "ram-1024": 1024}

PROFILES = {
    "low-ram": f"{LOW_RAM_MB} MB of RAM (a fake /proc/meminfo): the installer refuses it",
    "ram-512": "512 MB of RAM, exactly the installer's limit: still refused (it wants more than 512)",
    "ram-1024": "1024 MB of RAM, exactly the mini-install limit: installs with sqlite and nginx only;"
    " MySQL and OpenLiteSpeed are refused",
    "debian13": "Debian 13 (trixie) os-release: not in the installer's list",
    "eol-os": "Debian 10 (buster) os-release: End of Support, installs only with allow_eol_os",
    "bad-hostname": "`hostname -f` has no dot (/etc/hosts without the FQDN)",
    "selinux": "SELinux enabled: `selinuxenabled` exits 0, as the installer tests it",
    "repo-failure": "the vendor's repository (the lab mirror's /repo) answers HTTP 503 to this host",
    "repo-unreachable": "the vendor's repository never answers this host (its connections are reset)",
    "dist-repo-down": "the distribution's own repository (the lab mirror's /debian) never answers this host",
    "non-root": f"ispagent logs in as {DEPLOY_USER}, who has no sudo; /var/lib/ispagent is {DEPLOY_USER}'s,"
    " so install.sh is uploaded and run without root",
    "installed": "ISPmanager (emulated) already installed, licensed and running",
}
MIRROR_DIR = Path("services/mirror")  # under the lab directory


def check_profiles(profiles: dict[str, str]) -> None:
    for name, profile in profiles.items():
        if profile not in PROFILES:
            raise LabError(f"{name}: unknown profile {profile!r}; known: {', '.join(PROFILES)}")


def parse_profile_options(options: tuple[str, ...]) -> dict[str, str]:
    """`h3=low-ram` options as a {host: profile} mapping."""
    profiles = {}
    for option in options:
        name, sep, profile = option.partition("=")
        if not sep or not name or not profile:
            raise LabError(f"--profile {option!r}: write HOST=PROFILE, e.g. h3=low-ram")
        profiles[name] = profile
    check_profiles(profiles)
    return profiles


def login_user(profile: str | None) -> str:
    """The account clients log in to a host of this profile with."""
    return DEPLOY_USER if profile == "non-root" else "root"


def apply_profile(
    profile: str | None,
    name: str,
    index: int,
    address: str,
    upper: Path,
    profile_dir: Path,
    rootfs: Path,
    *,
    license_url: str,
) -> None:
    """Write the profile's files for host `name` (its overlay upper layer, its bind-mount sources).

    `license_url` is the license service of the host's own lab (its partner emulator), which a
    preinstalled panel's licctl asks.
    """
    shutil.rmtree(profile_dir, ignore_errors=True)
    if profile is None:
        return
    profile_dir.mkdir(parents=True)
    if profile in RAM_PROFILES:
        write_scratch_file(profile_dir / "meminfo", _meminfo(RAM_PROFILES[profile]))
    elif profile == "debian13":
        _os_release(upper, "13", "trixie", "13.1")
    elif profile == "eol-os":
        _os_release(upper, "10", "buster", "10.13")
    elif profile == "bad-hostname":
        write_scratch_file(upper / "etc/hosts", f"127.0.0.1\tlocalhost\n{address}\t{name}\n")
    elif profile == "selinux":
        _mkdirs(upper, "usr/sbin", "etc/selinux")
        write_scratch_file(upper / "usr/sbin/selinuxenabled", "#!/bin/sh\nexit 0\n", 0o755)
        write_scratch_file(upper / "usr/sbin/getenforce", "#!/bin/sh\necho Enforcing\n", 0o755)
        write_scratch_file(upper / "etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    elif profile == "non-root":
        _without_root(upper, rootfs)
    elif profile == "installed":
        _install_panel(upper, index, address, license_url)


def preinstalled_licid(index: int) -> str:
    return str(4_000_000 + index)


def write_mirror_faults(lab_dir: Path, hosts) -> None:
    """The repository faults of profiled hosts, by address, for the lab's mirror."""
    faults = {host.address: host.profile for host in hosts if getattr(host, "profile", None) in MIRROR_FAULTS}
    write_host_faults(lab_dir / MIRROR_DIR, faults)


def _meminfo(total_mb: int) -> str:
    total = total_mb * 1024
    lines = [f"MemTotal:       {total} kB", f"MemFree:        {total // 2} kB", f"MemAvailable:   {total * 3 // 4} kB"]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.split(":")[0] not in ("MemTotal", "MemFree", "MemAvailable"):
            lines.append(line)
    return "\n".join(lines) + "\n"


def _os_release(upper: Path, version: str, codename: str, debian_version: str) -> None:
    _mkdirs(upper, "etc")
    (upper / "etc/os-release").unlink(missing_ok=True)
    write_scratch_file(
        upper / "etc/os-release",
        (
            f'PRETTY_NAME="Debian GNU/Linux {version} ({codename})"\nNAME="Debian GNU/Linux"\n'
            f'VERSION_ID="{version}"\nVERSION="{version} ({codename})"\nVERSION_CODENAME={codename}\nID=debian\n'
        ),
    )
    write_scratch_file(upper / "etc/debian_version", f"{debian_version}\n")


def _without_root(upper: Path, rootfs: Path) -> None:
    """The deploy user loses its sudo rule (the sudo group's rule wants a password it does not have)
    and owns ispagent's working directory."""
    _mkdirs(upper, "etc/sudoers.d", "var/lib")
    write_scratch_file(upper / "etc/sudoers.d/ispagent-deploy", "# no sudo for the deploy user on this host\n", 0o440)
    owner = (rootfs / "home" / DEPLOY_USER).stat()
    for directory in (upper / "var/lib/ispagent", upper / "var/lib/ispagent/installer"):
        directory.mkdir(exist_ok=True)
        shutil.chown(directory, owner.st_uid, owner.st_gid)


def _install_panel(upper: Path, index: int, address: str, license_url: str) -> None:
    _mkdirs(upper, "usr/local")
    target = upper / "usr/local/mgr5"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(EMULATOR_PANEL, target)
    for sub in ("etc/ispmgr.conf.d", "var/run"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    license = {
        "licid": preinstalled_licid(index),
        "panel_name": "ISPmanager Lite",
        "expire": "2099-12-31",
        "ip": address,
    }
    write_scratch_file(target / "etc/ispmgr.lic", json.dumps(license) + "\n")
    write_scratch_file(target / "etc/emulator.json", json.dumps({"license_url": license_url}) + "\n")
    write_scratch_file(
        target / "etc/emulator-packages", "coremanager\nispmanager-lite-common\ncoremanager-pkg-fail2ban\n"
    )
    write_scratch_file(target / "etc/mgrlist.conf", "manager ispmgr\n")


def _mkdirs(upper: Path, *relative: str) -> None:
    for rel in relative:
        path = upper
        for part in Path(rel).parts:
            path = path / part
            if not path.exists():
                path.mkdir(mode=0o755)
                path.chmod(0o755)
