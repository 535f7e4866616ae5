"""Benchmark (not a test): ispagent over 10 to 1000 lab hosts, wall time and control-node memory.

For each size: the lab's bring-up time and the memory it took (MemAvailable before and after),
then one `ispagent run` of the race job (bench/race.py's four operations) with --forks
min(hosts, --max-forks): wall time, the control node's peak RSS (and per host), hosts ok. With
--install, at the largest size the whole install flow (playbooks/install.yaml, installer duration
0, the lab's partner emulator) runs over every host twice: the second run must change nothing.
The lab is taken down at the end (its time printed too). Wall time and RSS should grow linearly.

    .venv/bin/python bench/scale.py [--sizes 10,100,250,500,1000] [--max-forks 250] [--install]

It brings up a lab of its own, beside any other lab on the machine (mind the memory: about 1.5 MiB
per idle host, see `ispagent lab status`).
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

from race import Job  # noqa: E402

from agent.lab import Lab, network  # noqa: E402
from agent.lab.mirror import write_config  # noqa: E402
from agent.shipped import playbooks_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lab_pss_mb(lab: Lab) -> float:
    """Proportional memory of every process inside the lab's hosts (sshd and what it runs)."""
    total = 0
    for pid in network.processes_in_netns(lab.network.list_netns()):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def load() -> str:
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def run_ispagent(
    playbook: Path, inventory: Path, forks: int, state: Path, work: Path
) -> tuple[float, float, int, dict, int]:
    """One `ispagent run` in a fresh process: wall, peak RSS (MB), exit code, hosts by status, hosts changed."""
    report = work / f"report-{uuid.uuid4().hex[:12]}.json"
    argv = [
        sys.executable,
        "-m",
        "agent",
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--forks",
        str(forks),
        "-q",
        "--ssh-config",
        "/dev/null",
        "--report-json",
        str(report),
    ]
    started = time.perf_counter()
    with open(work / "run-output.log", "ab") as log:
        process = subprocess.Popen(
            argv, env={**os.environ, "ISPAGENT_STATE_DIR": str(state)}, cwd=REPO, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    counts: dict[str, int] = {}
    changed = 0
    if report.exists():
        for host in json.loads(report.read_text()).get("hosts", []):
            counts[host["status"]] = counts.get(host["status"], 0) + 1
            changed += any(step["changed"] for step in host["steps"])
            if host["status"] not in ("ok", "changed") and counts[host["status"]] <= 10:
                print(f"  {host['name']} {host['status']}: {host.get('error')}", flush=True)
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), counts, changed


def row(label: str, size: int, forks: int, result: tuple[float, float, int, dict, int]) -> str:
    wall, rss, code, counts, changed = result
    hosts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no report"
    return (
        f"{label:<8} {size:>5}  {forks:>5}  {wall:>7.1f}s  {rss:>5.0f} MB  {rss * 1024 / size:>5.0f} KB  "
        f"exit {code}, {hosts}, {changed} changed  {load()}"
    )


def install_flow(lab: Lab, size: int, forks: int, work: Path) -> None:
    """The whole install flow over every lab host, twice; the second run must change nothing."""
    write_config(lab.dir / "services" / "mirror", install_seconds=0, license_retry_delay=0.2)
    state = work / "install-state"
    for attempt in ("install", "again"):
        print(
            row(
                attempt,
                size,
                forks,
                run_ispagent(playbooks_dir() / "install.yaml", lab.inventory_path, forks, state, work),
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,250,500,1000")
    parser.add_argument("--max-forks", type=int, default=250)
    parser.add_argument("--install", action="store_true", help="run the install flow twice at the largest size")
    parser.add_argument("--install-forks", type=int, help="--forks of the install flow (default: --max-forks)")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ispagent-scale-"))
    lab = Lab(work / "lab")
    print(f"{os.cpu_count()} CPUs; {mem_available_mb():,.0f} MB available before the lab; {load()}")
    try:
        for size in sizes:
            before, began = mem_available_mb(), time.perf_counter()
            lab.up(size)
            up = time.perf_counter() - began
            time.sleep(1)
            print(
                f"lab up to {size} hosts: {up:.1f} s; MemAvailable {before - mem_available_mb():,.0f} MB lower,"
                f" the hosts' processes {lab_pss_mb(lab):,.0f} MB PSS; {load()}",
                flush=True,
            )
            forks = min(size, options.max_forks)
            job = Job(work, lab, size)
            print(
                row(
                    "race",
                    size,
                    forks,
                    run_ispagent(
                        job.ispagent_playbook(uuid.uuid4().hex[:12]),
                        job.dir / "inventory.yaml",
                        forks,
                        work / "state",
                        work,
                    ),
                ),
                flush=True,
            )
        if options.install:
            install_flow(lab, sizes[-1], min(sizes[-1], options.install_forks or options.max_forks), work)
    finally:
        before, began = mem_available_mb(), time.perf_counter()
        lab.down(progress=lambda message: print(f"  {time.perf_counter() - began:5.1f} s  {message}", flush=True))
        print(f"lab down: {time.perf_counter() - began:.1f} s, {mem_available_mb() - before:,.0f} MB freed; {load()}")
        print(f"run output: {work / 'run-output.log'}")
        for path in work.iterdir():
            if path.name != "run-output.log":
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


if __name__ == "__main__":
    main()
