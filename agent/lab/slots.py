"""Where the labs of this machine sit: one slot per lab directory, and with it the lab's own bridge,
/21 and names (network.LabNetwork).

/run/ispagent/labs/N records which directory holds the lab in slot N and which process last
brought it up. A slot is taken under the machine's lab lock and kept until that lab's `down`, so
a lab whose process was killed keeps its slot (`ispagent lab status` lists it, `lab down --dir`
takes it down); it is given to another directory only once nothing of it is left on the machine
and the process that brought it up is gone. /run is a tmpfs: after a reboot every slot is free,
and a lab brought up again takes the slot its hosts had if it still is.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.atomicfile import write_scratch_file
from agent.errors import LabError
from agent.lab import services
from agent.lab.network import MAX_SLOTS, LabNetwork

MACHINE_STATE = Path("/run/ispagent")
LABS_DIR = MACHINE_STATE / "labs"
# Slot 0's directory, as ispagent recorded it when there was one lab per machine: kept up to date
# so that an older ispagent on the same machine sees slot 0's names as taken, and read so that a
# lab it brought up is slot 0's.
LEGACY_LAB_DIR = MACHINE_STATE / "lab-dir"
LOCK_FILE = MACHINE_STATE / "lab.lock"  # the same lock file as older versions: bring-ups take turns with theirs
# Slot 0 has the names and addresses of the one lab of older versions, which know no other slot: an
# older ispagent on this machine can bring its lab up only there, so new labs take it last.
SLOT_ORDER = (*range(1, MAX_SLOTS), 0)


@dataclass(frozen=True)
class SlotRecord:
    slot: int
    dir: Path
    owner_pid: int | None = None  # the process that last brought the lab up (None: an older ispagent)
    owner_start: int | None = None  # its start time in clock ticks: guards against a reused pid

    @property
    def owner_alive(self) -> bool:
        if self.owner_pid is None:
            return False
        started = _start_time(self.owner_pid)
        return started is not None and started == self.owner_start


@contextmanager
def machine_lock() -> Iterator[None]:
    """Serialize lab bring-ups and teardowns across processes: slots are taken under it, and the
    machine-wide things labs share (/run/netns, the ARP table's limits) are changed under it."""
    MACHINE_STATE.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def records() -> list[SlotRecord]:
    """Every slot recorded on this machine, by slot."""
    found = {record.slot: record for record in map(_read, _record_files()) if record is not None}
    legacy = _legacy_record()
    if 0 not in found and legacy is not None:
        found[0] = legacy
    return [found[slot] for slot in sorted(found)]


def record_of(lab_dir: Path) -> SlotRecord | None:
    """The slot recorded for the lab in `lab_dir`, if any."""
    return next((record for record in records() if record.dir == lab_dir), None)


def claim(lab_dir: Path, preferred: int | None = None) -> int:
    """The slot of the lab in `lab_dir`: the one recorded for it, else `preferred` if free, else the
    lowest free one from 1 up, slot 0 last (see SLOT_ORDER). Records it with this process as its
    owner. Call under machine_lock()."""
    record = record_of(lab_dir)
    if record is not None:
        slot = record.slot
    else:
        slot = _free_slot(preferred)
    _write(slot, lab_dir)
    return slot


def release(slot: int, lab_dir: Path) -> None:
    """Forget slot `slot` if it is recorded for `lab_dir`. Call under machine_lock()."""
    path = LABS_DIR / str(slot)
    record = _read(path)
    if record is not None and record.dir == lab_dir:
        path.unlink(missing_ok=True)
    if slot == 0 and _legacy_dir() == lab_dir:
        LEGACY_LAB_DIR.unlink(missing_ok=True)


def unrecorded_in_use() -> list[int]:
    """Slots whose network exists with no lab directory recorded for it (removed by hand, or an
    older ispagent's lab whose record was lost)."""
    recorded = {record.slot for record in records()}
    return [slot for slot in range(MAX_SLOTS) if slot not in recorded and LabNetwork(slot).in_use()]


def _free_slot(preferred: int | None) -> int:
    served = services.served_addresses()
    taken = {record.slot for record in records() if record.owner_alive or _has_leftovers(record.slot, served)}
    candidates = ([preferred] if preferred is not None else []) + list(SLOT_ORDER)
    for slot in candidates:
        if slot not in taken and not _has_leftovers(slot, served):
            return slot
    raise LabError(
        f"all {MAX_SLOTS} lab slots of this machine are taken: take a lab down with"
        " `ispagent lab down --dir DIR` (`ispagent lab status` lists them)"
    )


def _has_leftovers(slot: int, served: dict[str, list[int]]) -> bool:
    """Whether anything of slot `slot` is on the machine: network, or services on its address
    (`served`: services.served_addresses()). A record with none left and its owner gone no longer
    holds the slot: nothing of its lab lives to collide with."""
    network = LabNetwork(slot)
    return network.in_use() or network.bridge_address in served


def _write(slot: int, lab_dir: Path) -> None:
    LABS_DIR.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    record = {"dir": str(lab_dir), "owner_pid": pid, "owner_start": _start_time(pid)}
    write_scratch_file(LABS_DIR / str(slot), json.dumps(record) + "\n")
    if slot == 0:
        write_scratch_file(LEGACY_LAB_DIR, f"{lab_dir}\n")


def _record_files() -> list[Path]:
    if not LABS_DIR.is_dir():
        return []
    return [path for path in LABS_DIR.iterdir() if path.name.isdigit() and int(path.name) < MAX_SLOTS]


def _read(path: Path) -> SlotRecord | None:
    try:
        data = json.loads(path.read_text())
        return SlotRecord(int(path.name), Path(data["dir"]), data.get("owner_pid"), data.get("owner_start"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise LabError(
            f"{path} is not a lab slot record ({error}): remove it if no lab is up in slot {path.name}"
        ) from None


def _legacy_record() -> SlotRecord | None:
    """Slot 0 as an older ispagent recorded it, while its lab is up."""
    lab_dir = _legacy_dir()
    if lab_dir is None or not LabNetwork(0).in_use():
        return None
    return SlotRecord(0, lab_dir)


def _legacy_dir() -> Path | None:
    try:
        text = LEGACY_LAB_DIR.read_text().strip()
    except FileNotFoundError:
        return None
    return Path(text) if text else None


def _start_time(pid: int) -> int | None:
    """The start time of live process `pid` in clock ticks; None once it has ended (zombies included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])
