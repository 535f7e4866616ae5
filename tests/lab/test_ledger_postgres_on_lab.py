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
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            str(LICENSE_ONLY),
            "-i",
            str(inventory),
            "--forks",
            "20",
            "--report-json",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "ISPAGENT_STATE_DIR": str(base)},
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
            texts = outputs + [
                p.read_text(errors="replace")
                for p in tmp_path.rglob("*")
                if p.is_file() and "partner" not in p.parts and p.name != "inventory.yaml"
            ]
            assert not [t for t in texts if password in t], "the ledger password leaked"
            print(
                f"\ntwo agents, 20 hosts, one PostgreSQL ledger: {dict(actions)}; "
                f"{emulator.calls['soft.order.param']} orders, 20 licenses, one per host"
            )
    finally:
        emulator.stop()
        lab.up(6)


def test_postgresql_gone_mid_run_orders_nothing_without_an_intent_and_resume_licenses_each_host_once(lab, tmp_path):
    """The ledger's PostgreSQL goes away between two orders (a cut connection, then refused ones): the
    order already sent is not lost (the resume adopts it from the account), no host is ordered for
    without its intent written, errors are one line, and the resumed run licenses every host once."""
    from labkit import read_run_id, wait_until
    from pgkit import CuttableProxy

    hosts = lab.hosts[:4]
    emulator = start_emulator(tmp_path / "partner")
    proxy = CuttableProxy()
    try:
        with pg_schema() as url:
            inventory = license_inventory(
                lab,
                tmp_path / "inventory.yaml",
                emulator,
                tmp_path / "unused.sqlite",
                hosts=hosts,
                ledger_url=proxy.url(url),
            )
            emulator.order_gate.hold_after(1)
            env = {**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path)}
            process = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", str(LICENSE_ONLY), "-i", str(inventory), "--forks", "1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO,
                env=env,
            )
            run_id = read_run_id(process)
            wait_until(emulator.order_gate.held.is_set, process, "the second order never came")
            proxy.cut()
            emulator.order_gate.release()  # the second order goes through: paid for, its answer unrecorded
            output = process.communicate(timeout=180)[0]
            assert process.returncode == 1, output
            assert "Traceback" not in output
            assert len(live_licenses(emulator)) == 2, output  # nothing ordered once the ledger was gone
            failures = [line for line in output.splitlines() if "ledger" in line and "failed" in line]
            assert failures and all(len(line) < 600 for line in failures), output

            proxy.restore()
            resumed = subprocess.run(
                [sys.executable, "-m", "agent", "run", "--resume", run_id, "--report-json", str(tmp_path / "r.json")],
                capture_output=True,
                text=True,
                cwd=REPO,
                env=env,
                timeout=180,
            )
            assert resumed.returncode in (0, 4), resumed.stdout + resumed.stderr
            by_ip = Counter(lic["ip"] for lic in live_licenses(emulator))
            assert by_ip == {h.address: 1 for h in hosts}
            assert all(h["status"] in ("ok", "changed") for h in read_report(tmp_path / "r.json")["hosts"])
    finally:
        emulator.order_gate.release(drop=True)
        emulator.stop()
        proxy.cut()
