"""Benchmark (not a test): a no-op rerun of playbooks/install.yaml on a small and on a large partner account.

Brings up a lab of --hosts hosts (the lab's own partner emulator, with the test harness's counters),
installs every host once, then reruns install.yaml (nothing to change) with --others other licenses
in the account, and again with --many others (written straight into the emulator's store). The
run's ledger holds the same other servers, as a partner's does when ispagent set them up: a host,
a held license and a confirmed activation each (written straight into the ledger). For each
rerun: wall time, the run's CPU time (user + system, from wait4) beside the machine's CPU count and
load, hosts by status, and the partner calls the emulator counted, by function and per host. The
issue's bound: the large account's rerun within 1.2x of the small one's, at most 2 calls per host.

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/partner_scale.py [--hosts 100] [--others 100] [--many 20000]
        [--repeat 1] [--checkout TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS  # noqa: E402
from partnerkit import fill_store  # noqa: E402

from agent.lab import Lab  # noqa: E402
from agent.lab.mirror import write_config  # noqa: E402
from agent.shipped import playbooks_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = playbooks_dir() / "install.yaml"


def admin(lab: Lab, op: str) -> dict:
    """The lab emulator's admin route `op` (the harness's LabAdmin: counters, licenses)."""
    token = (lab.dir / "services" / "partner" / "admin-token").read_text().strip()
    request = urllib.request.Request(f"http://{lab.bridge_address}:8443/admin/{op}", headers={"X-Admin-Token": token})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def fill_others(lab: Lab, count: int) -> int:
    """Add or remove licenses of other servers until the account holds `count` of them (the small
    account again after the large one: the repetitions interleave); returns how many it holds."""
    path = lab.dir / "services" / "partner" / "partner.sqlite"
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30)  # WAL: the emulator keeps serving
    try:
        held = db.execute("SELECT count(*) FROM licenses WHERE licname LIKE 'other-%'").fetchone()[0]
        if count > held:
            fill_store(db, count - held, start=held)
        elif count < held:  # fill_store numbers them other-0, other-1...: keep the first `count`
            db.execute(
                "DELETE FROM licenses WHERE licname LIKE 'other-%' AND CAST(substr(licname, 7) AS INTEGER) >= ?",
                (count,),
            )
        return db.execute("SELECT count(*) FROM licenses WHERE licname LIKE 'other-%'").fetchone()[0]
    finally:
        db.close()


def fill_ledger(lab: Lab, ledger_path: Path) -> int:
    """Make the run's ledger hold exactly the account's other servers (licenses named other-N): a
    host, its held license and its confirmed activation each; returns how many.

    Plain SQL on the tables every schema version has: opening the ledger through this checkout's
    code would migrate it, and the code before a change (--checkout) would then refuse it."""
    store = sqlite3.connect(str(lab.dir / "services" / "partner" / "partner.sqlite"), timeout=30)
    try:
        others = store.execute("SELECT id, licname, ip FROM licenses WHERE licname LIKE 'other-%'").fetchall()
    finally:
        store.close()
    now = "2026-12-01T00:00:00+00:00"
    db = sqlite3.connect(str(ledger_path), isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")
        for table, column in (("activations", "host_name"), ("licenses", "host_name"), ("hosts", "name")):
            db.execute(f"DELETE FROM {table} WHERE {column} LIKE 'other-%'")
        db.executemany(
            "INSERT INTO hosts (name, remoteid, address, fqdn, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)",
            [(name, name, ip, now, now) for _, name, ip in others],
        )
        db.executemany(
            "INSERT INTO licenses (id, host_name, ip, edition, period, action, state, created_at, updated_at)"
            " VALUES (?, ?, ?, 'lite', 'monthly', 'ordered', 'held', ?, ?)",
            [(str(i), name, ip, now, now) for i, name, ip in others],
        )
        db.executemany(
            "INSERT INTO activations (license_id, host_name, fqdn, remoteid, ip, edition, period, state, attempts,"
            " created_at, confirmed_at) VALUES (?, ?, ?, ?, ?, 'lite', 'monthly', 'confirmed', 1, ?, ?)",
            [(str(i), name, f"{name}.example", name, ip, now, now) for i, name, ip in others],
        )
        db.execute("COMMIT")
    finally:
        db.close()
    return len(others)


def run(lab: Lab, forks: int, state: Path, work: Path, checkout: Path = REPO) -> dict:
    """One `ispagent run` of install.yaml in a fresh process: wall, CPU, hosts by status and changed.
    `checkout`: another source tree of ispagent to run instead (the code before a change), with this venv."""
    report = work / f"report-{uuid.uuid4().hex[:12]}.json"
    argv = [
        sys.executable,
        "-m",
        "agent",
        "run",
        str(PLAYBOOK),
        "-i",
        str(lab.inventory_path),
        "--forks",
        str(forks),
        "-q",
        "--ssh-config",
        "/dev/null",
        "--report-json",
        str(report),
    ]
    began = time.perf_counter()
    with open(work / "run-output.log", "ab") as log:
        process = subprocess.Popen(
            argv,
            env={
                **os.environ,
                "ISPAGENT_STATE_DIR": str(state),
                **({"PYTHONPATH": str(checkout)} if checkout != REPO else {}),
            },
            cwd=checkout,  # `python -m` puts the working directory first on the path
            stdout=log,
            stderr=log,
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    hosts = json.loads(report.read_text()).get("hosts", []) if report.exists() else []
    statuses: dict[str, int] = {}
    for host in hosts:
        statuses[host["status"]] = statuses.get(host["status"], 0) + 1
    changed = sum(any(step["changed"] for step in host["steps"]) for host in hosts)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "exit": os.waitstatus_to_exitcode(status),
        "statuses": statuses,
        "changed": changed,
    }


def rerun(
    lab: Lab, label: str, others: int, forks: int, state: Path, work: Path, hosts: int, checkout: Path = REPO
) -> dict:
    held = fill_others(lab, others)
    in_ledger = fill_ledger(lab, state / "ledger.sqlite")
    admin(lab, "calls?reset=1")
    load = os.getloadavg()[0]
    result = run(lab, forks, state, work, checkout)
    calls = admin(lab, "calls")["calls"]
    total = sum(calls.values())
    valid = result["exit"] == 0 and set(result["statuses"]) == {"ok"}
    print(
        f"{label:<6} {held:>6} other licenses ({in_ledger} in the ledger): {result['wall']:6.1f} s wall, {result['cpu']:5.1f} s CPU "
        f"({os.cpu_count()} CPUs, load {load:.1f} before), peak RSS {result['rss_mb']:.0f} MB, exit {result['exit']}, "
        f"{result['statuses']}, {result['changed']} changed; partner calls {calls} = {total / hosts:.2f} per host"
        f"{'' if valid else '; NOT A NO-OP RERUN: this figure does not count (run output: run-output.log)'}",
        flush=True,
    )
    return {**result, "valid": valid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--others", type=int, default=100)
    parser.add_argument("--many", type=int, default=20_000)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="small and large reruns, interleaved, this many times")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=REPO,
        help="another ispagent source tree to run (e.g. a `git archive` of the commit before a change)",
    )
    options = parser.parse_args()
    os.environ[EXTENSIONS_ENV] = LAB_EXTENSIONS  # the lab's emulator counts calls (/admin/calls)
    work = Path(tempfile.mkdtemp(prefix="ispagent-partner-scale-"))
    lab = Lab(work / "lab")
    try:
        began = time.perf_counter()
        lab.up(options.hosts)
        print(f"lab up to {options.hosts} hosts: {time.perf_counter() - began:.1f} s", flush=True)
        write_config(lab.dir / "services" / "mirror", install_seconds=0, license_retry_delay=0.2)
        state = work / "state"
        first = run(lab, options.forks, state, work, options.checkout)
        print(
            f"install {first['wall']:6.1f} s wall, {first['cpu']:5.1f} s CPU, exit {first['exit']}, "
            f"{first['statuses']}, {first['changed']} changed",
            flush=True,
        )
        ratios = []
        for _ in range(options.repeat):
            small = rerun(lab, "small", options.others, options.forks, state, work, options.hosts, options.checkout)
            large = rerun(lab, "large", options.many, options.forks, state, work, options.hosts, options.checkout)
            ratio = large["wall"] / small["wall"]
            if small["valid"] and large["valid"]:
                ratios.append(ratio)
            print(
                f"large / small: {ratio:.2f}x wall, {large['cpu'] / small['cpu']:.2f}x CPU "
                f"(the issue's bound: 1.2x){'' if small['valid'] and large['valid'] else '; not counted'}",
                flush=True,
            )
        if len(ratios) > 1:
            print(f"wall ratios {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x")
    finally:
        began = time.perf_counter()
        lab.down()
        print(f"lab down: {time.perf_counter() - began:.1f} s; run output: {work / 'run-output.log'}")


if __name__ == "__main__":
    main()
