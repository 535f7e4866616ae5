"""The lab makes room in the control node's ARP table for its hosts: with Linux's default limits
(1024 entries at most) a 1000-host lab overflowed it and hosts the run had just reached came back
as "No route to host". Run against a directory standing in for /proc/sys/net/ipv4/neigh/default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.lab.network import fit_neighbour_table, restore_neighbour_table


@pytest.fixture
def sysctl(tmp_path: Path) -> Path:
    directory = tmp_path / "neigh"
    directory.mkdir()
    for n, value in ((1, 128), (2, 512), (3, 1024)):
        (directory / f"gc_thresh{n}").write_text(f"{value}\n")
    return directory


def thresholds(directory: Path) -> list[int]:
    return [int((directory / f"gc_thresh{n}").read_text()) for n in (1, 2, 3)]


def test_a_thousand_hosts_get_room_above_the_defaults_and_down_puts_them_back(sysctl: Path, tmp_path: Path):
    saved = tmp_path / "saved.json"
    fit_neighbour_table(1000, saved, sysctl)
    assert thresholds(sysctl) == [1128, 1512, 2024]
    fit_neighbour_table(1000, saved, sysctl)  # a second `up` keeps the first values found
    assert json.loads(saved.read_text()) == [128, 512, 1024]
    restore_neighbour_table(saved, sysctl)
    assert thresholds(sysctl) == [128, 512, 1024]
    assert not saved.exists()


def test_limits_already_large_enough_are_not_touched(sysctl: Path, tmp_path: Path):
    saved = tmp_path / "saved.json"
    fit_neighbour_table(5, saved, sysctl)
    assert thresholds(sysctl) == [128, 512, 1024]
    assert not saved.exists()
    restore_neighbour_table(saved, sysctl)  # nothing saved: nothing written
    assert thresholds(sysctl) == [128, 512, 1024]


def test_limits_are_never_lowered(sysctl: Path, tmp_path: Path):
    (sysctl / "gc_thresh3").write_text("8192\n")
    fit_neighbour_table(1000, tmp_path / "saved.json", sysctl)
    assert thresholds(sysctl) == [1128, 1512, 8192]


def test_inside_a_network_namespace_of_its_own_the_machine_wide_limits_are_left_to_the_machine(tmp_path: Path):
    # In a container's own network namespace /proc/sys/net/ipv4/neigh/default has no gc_thresh files.
    bare = tmp_path / "neigh"
    bare.mkdir()
    saved = tmp_path / "saved.json"
    fit_neighbour_table(1000, saved, bare)
    assert not saved.exists() and list(bare.iterdir()) == []
    restore_neighbour_table(saved, bare)
    assert list(bare.iterdir()) == []
