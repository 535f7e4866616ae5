"""Running the control machine's own tools for the lab: root check, tool check, one-shot commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from agent.errors import LabError

# Tool on the control machine -> the Debian package that provides it.
TOOL_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "mknod": "coreutils",
    "tar": "tar",
    "zstd": "zstd",
    "chroot": "coreutils",
    "debootstrap": "debootstrap",
}

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_root() -> None:
    """Raise the one-line LabError every lab command gives when not run as root."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts): run as root")


def require_tools(*tools: str) -> None:
    """Raise a LabError naming the apt package of the first missing tool."""
    path = os.environ.get("PATH", "") + ":" + SYSTEM_PATH
    for tool in tools:
        if shutil.which(tool, path=path) is None:
            package = TOOL_PACKAGES.get(tool, tool)
            raise LabError(f"the lab needs `{tool}`, which is missing: apt-get install {package}")


def run(argv: Sequence[str], *, input: str | None = None, what: str | None = None) -> str:
    """Run a command to completion and return its stdout; a failure becomes a LabError with stderr."""
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True, env=_system_env(), check=False)
    except FileNotFoundError:
        require_tools(argv[0])
        raise
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {done.returncode}"
        raise LabError(f"{what or ' '.join(argv[:3])} failed: {last}")
    return done.stdout


def _system_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = SYSTEM_PATH
    env["LC_ALL"] = "C"
    return env
