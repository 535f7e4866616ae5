"""One rollout, two control nodes (two `ispagent run --rollout` processes, each with its own state dir and
inventory file, as on two machines) over the 6 lab hosts through one PostgreSQL ledger; one node is
SIGKILLed mid-rollout, right after a license step it had not yet recorded in the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from labkit import REPO, wait_until
from partnerkit import license_inventory, live_licenses, start_emulator
from pgkit import pg_schema

pytestmark = pytest.mark.lab
LICENSE_ONLY = REPO / "playbooks" / "license-only.yaml"
LEASE = "3"


def _node(base: Path, lab, emulator, url: str, *extra: str, crash_at: str | None = None) -> subprocess.Popen:
    base.mkdir()
    inventory = license_inventory(lab, base / "inventory.yaml", emulator, base / "unused.sqlite", ledger_url=url)
    command = [
        "run",
        str(LICENSE_ONLY),
        "-i",
        str(inventory),
        "--rollout",
        "wave-1",
        "--lease",
        LEASE,
        "--forks",
        "2",
        *extra,
    ]
    prefix = ["-m", "harness.crashrun", crash_at] if crash_at else ["-m", "agent"]
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(base), "PYTHONPATH": str(REPO / "tests")}
    return subprocess.Popen(
        [sys.executable, *prefix, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )


def _status(base: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "rollout", "status", "wave-1", "-i", str(base / "inventory.yaml"), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_node_killed_mid_rollout_leaves_no_host_behind_and_no_license_twice(lab, tmp_path):
    emulator = start_emulator(tmp_path / "partner", latency=[0.05, 0.2], key_delay=0.3)
    try:
        with pg_schema() as url:
            began = time.monotonic()
            # Killed right after its third license step is in its journal, before the ledger has it.
            doomed = _node(tmp_path / "node-a", lab, emulator, url, crash_at="step_finished:license@3")
            wait_until(lambda: emulator.calls.get("soft.order.param", 0) >= 1, doomed, "node a never ordered")
            survivor = _node(tmp_path / "node-b", lab, emulator, url, "--wait")
            doomed_output = doomed.communicate(timeout=120)[0]
            assert doomed.returncode == -9, doomed_output  # killed at the chosen point, not finished
            mid = _status(tmp_path / "node-b")
            doomed_node = next(n["node"] for n in mid["nodes"] if n["pid"] == doomed.pid)
            dead = {h["host"] for h in mid["hosts"] if h["state"] == "claimed" and h["node"] == doomed_node}
            assert dead, mid  # it died holding hosts (at least the one whose license it had just got)
            output = survivor.communicate(timeout=180)[0]
            wall = time.monotonic() - began
            assert survivor.returncode == 0, output
            assert "Traceback" not in output + doomed_output

            status = _status(tmp_path / "node-a")
            assert status["complete"] and status["exit_code"] == 0, status
            assert {h["state"] for h in status["hosts"]} <= {"ok", "changed"}
            # Every host licensed exactly once, in the account and through the ledger.
            by_ip = Counter(lic["ip"] for lic in live_licenses(emulator))
            assert by_ip == {h.address: 1 for h in lab.hosts}, by_ip
            assert emulator.calls["soft.order.param"] == len(lab.hosts)
            # The dead node's hosts were claimed again and finished by the survivor.
            claims = {h["host"]: h["claims"] for h in status["hosts"]}
            assert {h["host"] for h in status["hosts"] if h["claims"] == 2} >= dead, claims
            nodes = {n["node"]: n for n in status["nodes"]}
            assert len(nodes) == 2 and nodes[doomed_node]["state"] == "running"  # it never left: it died
            survivor_node = next(name for name in nodes if name != doomed_node)
            assert nodes[survivor_node]["state"] == "finished"
            assert sum(nodes[survivor_node]["hosts"].values()) + sum(nodes[doomed_node]["hosts"].values()) == len(
                lab.hosts
            )
            per_node = {name: node["hosts"] for name, node in nodes.items()}
            print(
                f"\nrollout of {len(lab.hosts)} hosts, 2 nodes, one killed: hosts per node {per_node}; "
                f"claimed again {sorted(dead)}; wall {wall:.1f}s (lease {LEASE}s)"
            )
    finally:
        emulator.stop()
