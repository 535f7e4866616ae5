"""The lab's own services on its bridge address: what lab hosts reach instead of the internet.

Each lab has its own services, on its own bridge's address (agent/lab/network.py: LabNetwork), so
labs side by side use the same ports. Each service is a Python module run as
`python -m MODULE --listen ADDR:PORT --state-dir DIR`,
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

READY_TIMEOUT = 15.0
PARTNER_PORT = 8443


@dataclass(frozen=True)
class LabService:
    name: str
    module: str
    port: int
    # Inventory vars; "{url}" becomes http://BRIDGE:PORT, "{state}" the service's state directory.
    vars: dict[str, str] = field(default_factory=dict)

    def url(self, address: str) -> str:
        """Where the lab whose bridge has `address` serves it."""
        return f"http://{address}:{self.port}"

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


SERVICES: tuple[LabService, ...] = (
    # install.sh emulator and the flat apt/package mirror lab hosts install from; the install.sh it
    # serves points licctl at the partner emulator beside it, on the same address.
    LabService("mirror", "agent.lab.mirror", 8080, {"installer_url": "{url}/install.sh"}),
    # The partner account (BILLmanager API) emulator; it also answers the hosts' `licctl fetch`.
    LabService(
        "partner",
        "agent.lab.partner",
        PARTNER_PORT,
        {"partner_api_url": "{url}/billmgr", "partner_credentials_file": "{state}/credentials"},
    ),
)


def distribution_url(address: str) -> str:
    """The distribution's own package repository, as the hosts of the lab at `address` see it (the mirror's /debian)."""
    return f"{SERVICES[0].url(address)}/debian"


def license_url(address: str) -> str:
    """The license service licctl asks on the hosts of the lab at `address`: its partner emulator."""
    return f"http://{address}:{PARTNER_PORT}"


def state_dir(lab_dir: Path, service: LabService) -> Path:
    return lab_dir / "services" / service.name


def inventory_vars(lab_dir: Path, address: str) -> dict[str, str]:
    """The vars every host of the lab at `address` gets so that ispagent uses the lab's services."""
    result: dict[str, str] = {}
    for service in SERVICES:
        if service.available():
            for key, value in service.vars.items():
                result[key] = value.format(url=service.url(address), state=state_dir(lab_dir, service))
    return result


def start_services(lab_dir: Path, address: str) -> list[str]:
    """Start every available service that is not running on `address`; wait until each accepts connections."""
    started = []
    for service in SERVICES:
        if not service.available() or _running_pid(lab_dir, service):
            continue
        directory = state_dir(lab_dir, service)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "service.log", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    service.module,
                    "--listen",
                    f"{address}:{service.port}",
                    "--state-dir",
                    str(directory),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        (directory / "pid").write_text(str(process.pid))
        _wait_listening(service, address, process, directory)
        started.append(service.name)
    return started


def stop_services(lab_dir: Path, address: str | None = None) -> None:
    """Stop the lab's services: those its directory records and, given the lab's `address`, any
    other process serving on it (e.g. the lab directory was removed while the lab was up)."""
    pids = {pid for service in SERVICES if (pid := _running_pid(lab_dir, service))}
    if address is not None:
        pids.update(serving_on(address))
    for pid in pids:
        _stop(pid)
    for service in SERVICES:
        (state_dir(lab_dir, service) / "pid").unlink(missing_ok=True)


def serving_on(address: str) -> list[int]:
    """Pids of live lab services (of any lab directory) listening on `address`."""
    return served_addresses().get(address, [])


def served_addresses() -> dict[str, list[int]]:
    """The addresses lab services (of any lab directory) listen on, with their pids: one pass over /proc."""
    ports = {str(service.port) for service in SERVICES}
    modules = {service.module for service in SERVICES}
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        pairs = list(zip(argv, argv[1:]))
        listen = next((value for option, value in pairs if option == "--listen"), "")
        address, _, port = listen.rpartition(":")
        if port in ports and any(a == "-m" and b in modules for a, b in pairs) and _alive(int(entry)):
            found.setdefault(address, []).append(int(entry))
    return found


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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


def _wait_listening(service: LabService, address: str, process: subprocess.Popen, directory: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"lab service {service.name} exited ({process.returncode}): see {directory / 'service.log'}")
        try:
            with socket.create_connection((address, service.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise LabError(f"lab service {service.name} did not listen on port {service.port}: see {directory / 'service.log'}")
