"""Two agents (two `ispagent run` processes, each with its own state dir and inventory file, as on two
machines) license the same 20 lab hosts at once through one PostgreSQL ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from labkit import REPO, read_report
from partnerkit import license_inventory, live_licenses, start_emulator
from pgkit import pg_schema

pytestmark = pytest.mark.lab
LICENSE_ONLY = REPO / "playbooks" / "license-only.yaml"


def _agent(base: Path, lab, emulator, url: str) -> tuple[subprocess.Popen, Path]:
    base.mkdir()
    inventory = license_inventory(lab, base / "inventory.yaml", emulator, base / "unused.sqlite", ledger_url=url)
    report = base / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(LICENSE_ONLY), "-i", str(inventory), "--forks", "20", "--report-json", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env={**os.environ, "ISPAGENT_STATE_DIR": str(base)},
    )
    return process, report


def test_two_runs_at_once_on_one_postgresql_ledger_order_exactly_one_license_per_host(lab, tmp_path):
    emulator = start_emulator(tmp_path / "partner", latency=[0.01, 0.08], key_delay=0.2)
    try:
        with pg_schema() as url:
            lab.up(20)
            agents = [_agent(tmp_path / name, lab, emulator, url) for name in ("agent-a", "agent-b")]
            outputs = [process.communicate(timeout=300)[0] for process, _ in agents]
            for (process, _), output in zip(agents, outputs):
                assert process.returncode == 0, output
            by_ip = Counter(lic["ip"] for lic in live_licenses(emulator))
            assert {h.address: by_ip[h.address] for h in lab.hosts} == {h.address: 1 for h in lab.hosts}
            assert len(live_licenses(emulator)) == 20 and emulator.calls["soft.order.param"] == 20
            actions = Counter(h["license"]["action"] for _, report in agents for h in read_report(report)["hosts"])
            assert actions["ordered"] == 20 and sum(actions.values()) == 40, actions
            password = url.split(":")[2].split("@")[0]
            texts = outputs + [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and "partner" not in p.parts and p.name != "inventory.yaml"]
            assert not [t for t in texts if password in t], "the ledger password leaked"
            print(f"\ntwo agents, 20 hosts, one PostgreSQL ledger: {dict(actions)}; "
                  f"{emulator.calls['soft.order.param']} orders, 20 licenses, one per host")
    finally:
        emulator.stop()
        lab.up(6)
