"""The lab's own services on the bridge address: what lab hosts reach instead of the internet.

Each service is a Python module run as `python -m MODULE --listen ADDR:PORT --state-dir DIR`,
started by `lab up` (detached, one process each, state under DIR/services/NAME) and stopped by
`lab down`. A service adds the variables that point lab hosts and ispagent at it to the lab's
inventory. A service whose module does not exist yet is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import LabError
from agent.lab.network import BRIDGE_ADDRESS

READY_TIMEOUT = 15.0


@dataclass(frozen=True)
class LabService:
    name: str
    module: str
    port: int
    # Inventory vars; "{url}" becomes http://BRIDGE:PORT, "{state}" the service's state directory.
    vars: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{BRIDGE_ADDRESS}:{self.port}"

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


SERVICES: tuple[LabService, ...] = (
    # install.sh emulator and the flat apt/package mirror lab hosts install from.
    LabService("mirror", "agent.lab.mirror", 8080, {"installer_url": "{url}/install.sh"}),
    # The partner account (BILLmanager API) emulator; it also answers the hosts' `licctl fetch`.
    LabService(
        "partner",
        "agent.lab.partner",
        8443,
        {"partner_api_url": "{url}/billmgr", "partner_credentials_file": "{state}/credentials"},
    ),
)

# The distribution's own package repository, as the lab's hosts see it (the mirror's /debian).
DISTRIBUTION_URL = f"{SERVICES[0].url}/debian"


def state_dir(lab_dir: Path, service: LabService) -> Path:
    return lab_dir / "services" / service.name


def inventory_vars(lab_dir: Path) -> dict[str, str]:
    """The vars every lab host gets so that ispagent uses the lab's services."""
    result: dict[str, str] = {}
    for service in SERVICES:
        if service.available():
            for key, value in service.vars.items():
                result[key] = value.format(url=service.url, state=state_dir(lab_dir, service))
    return result


def start_services(lab_dir: Path) -> list[str]:
    """Start every available service that is not running; wait until each accepts connections."""
    started = []
    for service in SERVICES:
        if not service.available() or _running_pid(lab_dir, service):
            continue
        directory = state_dir(lab_dir, service)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "service.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", service.module, "--listen", f"{BRIDGE_ADDRESS}:{service.port}",
                 "--state-dir", str(directory)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        (directory / "pid").write_text(str(process.pid))
        _wait_listening(service, process, directory)
        started.append(service.name)
    return started


def stop_services(lab_dir: Path) -> None:
    for service in SERVICES:
        pid = _running_pid(lab_dir, service)
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        (state_dir(lab_dir, service) / "pid").unlink(missing_ok=True)


def _running_pid(lab_dir: Path, service: LabService) -> int | None:
    try:
        pid = int((state_dir(lab_dir, service) / "pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_listening(service: LabService, process: subprocess.Popen, directory: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"lab service {service.name} exited ({process.returncode}): see {directory / 'service.log'}")
        try:
            with socket.create_connection((BRIDGE_ADDRESS, service.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise LabError(f"lab service {service.name} did not listen on port {service.port}: see {directory / 'service.log'}")
