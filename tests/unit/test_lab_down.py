"""`lab down` moves the hosts' disks aside at once and removes them in the background: after an
install flow over 1000 hosts their removal was 67 s of a 77 s `down`. No lab needed."""

from __future__ import annotations

from pathlib import Path

from agent.lab.lab import TRASH_PREFIX, _discard_host_disks


def host_disks(lab_dir: Path, hosts: int) -> None:
    for index in range(1, hosts + 1):
        etc = lab_dir / "hosts" / f"h{index}" / "upper" / "etc"
        etc.mkdir(parents=True)
        (etc / "hostname").write_text(f"h{index}\n")


def test_host_disks_are_gone_at_once_and_removed_in_the_background(tmp_path: Path):
    host_disks(tmp_path, 20)
    (tmp_path / "inventory.yaml").write_text("hosts: {}\n")
    remover = _discard_host_disks(tmp_path)
    assert not (tmp_path / "hosts").exists()
    assert remover is not None and remover.wait(timeout=60) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml"]


def test_a_removal_cut_short_is_taken_up_by_the_next_down(tmp_path: Path):
    left = tmp_path / f"{TRASH_PREFIX}1-1" / "h1" / "upper"
    left.mkdir(parents=True)
    host_disks(tmp_path, 2)
    remover = _discard_host_disks(tmp_path)
    assert remover is not None and remover.wait(timeout=60) == 0
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_remove_starts_nothing(tmp_path: Path):
    assert _discard_host_disks(tmp_path) is None
