"""Benchmark (not a test): the race job (bench/race.py) by ispagent over 10 to 1000 lab hosts.

For each size: the lab's bring-up time and the memory it took (MemAvailable before and after),
then one `ispagent run` of the four-operation job with --forks min(hosts, --max-forks): wall time,
the control node's peak RSS (and per host), hosts ok. The lab is taken down at the end (its time
printed too). Wall time and RSS should grow linearly with hosts.

    .venv/bin/python bench/scale.py [--sizes 10,100,250,500,1000] [--max-forks 250]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from race import Job, wait_for_the_machine  # noqa: E402

from agent.lab import Lab  # noqa: E402


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_ispagent(job: Job, forks: int, state: Path) -> tuple[float, float, int, dict]:
    token = uuid.uuid4().hex[:12]
    report = job.dir / f"report-{token}.json"
    argv = [sys.executable, "-m", "agent", "run", str(job.ispagent_playbook(token)), "-i", str(job.dir / "inventory.yaml"),
            "--forks", str(forks), "-q", "--ssh-config", "/dev/null", "--report-json", str(report)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, env={**os.environ, "ISPAGENT_STATE_DIR": str(state)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    counts: dict[str, int] = {}
    if report.exists():
        for host in json.loads(report.read_text()).get("hosts", []):
            counts[host["status"]] = counts.get(host["status"], 0) + 1
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,250,500,1000")
    parser.add_argument("--max-forks", type=int, default=250)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ispagent-scale-"))
    lab = Lab(work / "lab")
    wait_for_the_machine(lab)
    print(f"{os.cpu_count()} CPUs; {mem_available_mb():,.0f} MB available before the lab")
    print(f"{'hosts':>5}  {'lab up':>7}  {'lab memory':>10}  {'forks':>5}  {'run wall':>8}  {'peak RSS':>8}  {'per host':>8}  hosts  load")
    try:
        for size in [int(size) for size in options.sizes.split(",")]:
            before, began = mem_available_mb(), time.perf_counter()
            lab.up(size)
            up = time.perf_counter() - began
            time.sleep(1)
            lab_mb = before - mem_available_mb()
            forks = min(size, options.max_forks)
            wall, rss, code, counts = run_ispagent(Job(work, lab, size), forks, work / "state")
            hosts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or f"exit {code}"
            print(f"{size:>5}  {up:>6.1f}s  {lab_mb:>7,.0f} MB  {forks:>5}  {wall:>7.1f}s  {rss:>5.0f} MB  "
                  f"{rss * 1024 / size:>5.0f} KB  {hosts}  {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        began = time.perf_counter()
        lab.down()
        print(f"lab down: {time.perf_counter() - began:.1f} s")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
