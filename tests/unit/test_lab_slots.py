"""Which slot a lab directory gets: its own while it has one, never another lab's while anything of
that lab lives, the lowest free one otherwise. Run against a registry in a temporary directory
standing in for /run/ispagent (the slots' networks are the machine's: no lab test runs in slot 31)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from agent.errors import LabError
from agent.lab import slots
from agent.lab.network import MAX_SLOTS


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    machine = tmp_path / "run-ispagent"
    monkeypatch.setattr(slots, "MACHINE_STATE", machine)
    monkeypatch.setattr(slots, "LABS_DIR", machine / "labs")
    monkeypatch.setattr(slots, "LEGACY_LAB_DIR", machine / "lab-dir")
    monkeypatch.setattr(slots, "LOCK_FILE", machine / "lab.lock")
    # Only slots this test marks are in use, whatever labs the machine really has up.
    monkeypatch.setattr(slots, "_has_leftovers", lambda slot, served: slot in IN_USE)
    monkeypatch.setattr(slots.LabNetwork, "in_use", lambda net: net.slot in IN_USE)
    IN_USE.clear()
    return machine


IN_USE: set[int] = set()


def claim(lab_dir: Path, preferred: int | None = None) -> int:
    with slots.machine_lock():
        return slots.claim(lab_dir, preferred)


def record_with_owner(registry: Path, slot: int, lab_dir: Path, pid: int | None) -> None:
    (registry / "labs").mkdir(parents=True, exist_ok=True)
    start = slots._start_time(pid) if pid else None
    (registry / "labs" / str(slot)).write_text(
        json.dumps({"dir": str(lab_dir), "owner_pid": pid, "owner_start": start})
    )


def test_labs_in_different_directories_get_different_slots_and_keep_them(tmp_path: Path) -> None:
    first, second = claim(tmp_path / "a"), claim(tmp_path / "b")
    assert (first, second) == (1, 2)
    assert claim(tmp_path / "a") == 1
    assert slots.record_of(tmp_path / "b").slot == 2


def test_slot_0_which_an_older_ispagent_can_only_use_is_taken_last(tmp_path: Path) -> None:
    assert [claim(tmp_path / f"lab{n}") for n in range(MAX_SLOTS)] == [*range(1, MAX_SLOTS), 0]


def test_slot_0_is_also_recorded_where_an_older_ispagent_looks(registry: Path, tmp_path: Path) -> None:
    assert claim(tmp_path / "a", preferred=0) == 0  # e.g. a lab an older ispagent brought up, up again
    assert (registry / "lab-dir").read_text() == f"{tmp_path / 'a'}\n"
    with slots.machine_lock():
        slots.release(0, tmp_path / "a")
    assert not (registry / "lab-dir").exists() and slots.records() == []


def test_an_older_ispagents_lab_up_in_slot_0_keeps_it(registry: Path, tmp_path: Path) -> None:
    registry.mkdir()
    (registry / "lab-dir").write_text(f"{tmp_path / 'old'}\n")
    IN_USE.add(0)
    assert slots.record_of(tmp_path / "old").slot == 0
    assert claim(tmp_path / "new") == 1


def test_a_lab_left_up_by_a_dead_process_keeps_its_slot_until_it_is_taken_down(registry: Path, tmp_path: Path) -> None:
    killed = subprocess.Popen(["sleep", "60"])
    record_with_owner(registry, 1, tmp_path / "left", killed.pid)
    killed.kill()
    killed.wait()
    IN_USE.add(1)
    assert claim(tmp_path / "other") == 2
    IN_USE.discard(1)  # `lab down` removed its network (or it was never made): nothing of it lives
    assert claim(tmp_path / "third") == 1


def test_a_slot_whose_owner_still_runs_is_not_given_away_even_with_nothing_up(registry: Path, tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "60"])
    try:
        record_with_owner(registry, 1, tmp_path / "busy", owner.pid)
        assert claim(tmp_path / "other") == 2
    finally:
        owner.kill()
        owner.wait()


def test_a_network_no_directory_is_recorded_for_is_never_reused(tmp_path: Path) -> None:
    IN_USE.update({1, 3})
    assert slots.unrecorded_in_use() == [1, 3]
    assert [claim(tmp_path / name) for name in ("a", "b")] == [2, 4]


def test_a_lab_brought_up_again_takes_back_its_former_slot_if_free(tmp_path: Path) -> None:
    assert claim(tmp_path / "a", preferred=5) == 5
    IN_USE.add(7)
    assert claim(tmp_path / "b", preferred=7) == 1


def test_when_every_slot_is_taken_the_error_says_how_to_free_one(tmp_path: Path) -> None:
    IN_USE.update(range(MAX_SLOTS))
    with pytest.raises(LabError) as full:
        claim(tmp_path / "a")
    assert str(full.value) == (
        f"all {MAX_SLOTS} lab slots of this machine are taken: take a lab down with"
        " `ispagent lab down --dir DIR` (`ispagent lab status` lists them)"
    )


def test_concurrent_claims_get_different_slots(tmp_path: Path) -> None:
    got: list[int] = []
    threads = [threading.Thread(target=lambda n=n: got.append(claim(tmp_path / f"lab{n}"))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(1, 9))


def test_a_damaged_record_is_named_with_what_to_do(registry: Path, tmp_path: Path) -> None:
    (registry / "labs").mkdir(parents=True)
    (registry / "labs" / "3").write_text("{not json")
    with pytest.raises(LabError, match=r"labs/3 is not a lab slot record .*: remove it if no lab is up in slot 3"):
        claim(tmp_path / "a")
