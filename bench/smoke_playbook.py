"""Benchmark: the smoke playbook (facts, upload, template, shell) over 10, 50 and 100 lab hosts.

Prints, for each size, the lab's bring-up time and, for a first run (everything changes) and a
second run (nothing changes), the CLI's wall time and the agent's peak RSS. Not a test: it gates
nothing. Run as root:  .venv/bin/python bench/smoke_playbook.py [--sizes 10,50,100]

`--runner fabric` runs the same CLI with commands run by fabric's Connection.run instead of the
transport's own session loop (bench/fabric_runner.py); `--runner both` alternates the two per size.

Targets on a 2-core machine: 50 hosts under 2 s, 100 hosts under 4 s, peak RSS under 250 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.lab import Lab  # noqa: E402
from agent.shipped import playbooks_dir  # noqa: E402

CLI = {
    "paramiko": [sys.executable, "-m", "agent"],
    "fabric": [sys.executable, str(REPO / "bench" / "fabric_runner.py")],
}


def run_cli(args: list[str], state_dir: Path, runner: str = "paramiko") -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit code of one `ispagent` process."""
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state_dir)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [*CLI[runner], *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.stderr.write(process.stderr.read().decode())
    return wall, usage.ru_maxrss / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--dir", type=Path, default=None, help="lab directory (default: a temp dir)")
    parser.add_argument("--runner", choices=["paramiko", "fabric", "both"], default="paramiko")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    runners = ["paramiko", "fabric"] if options.runner == "both" else [options.runner]
    work = Path(tempfile.mkdtemp(prefix="ispagent-bench-"))
    lab = Lab(options.dir or work / "lab")
    print(
        f"{'hosts':>5}  {'runner':>8}  {'lab up':>7}  {'run 1 (changes)':>16}  {'run 2 (no change)':>18}  {'peak RSS':>9}"
    )
    try:
        for size in sizes:
            started = time.perf_counter()
            lab.up(size)
            up = time.perf_counter() - started
            for runner in runners:
                for host in lab.hosts:
                    lab.exec(host.name, ["rm", "-rf", "/srv/ispagent-smoke"])
                args = ["run", str(playbooks_dir() / "smoke.yaml"), "-i", str(lab.inventory_path), "--forks", str(size)]
                first, rss1, code1 = run_cli(args, work / "state", runner)
                second, rss2, code2 = run_cli(args, work / "state", runner)
                if code1 or code2:
                    raise SystemExit(f"run failed at {size} hosts with {runner} (exit {code1}, {code2})")
                print(
                    f"{size:>5}  {runner:>8}  {up:>6.2f}s  {first:>15.2f}s  {second:>17.2f}s  {max(rss1, rss2):>6.0f} MB",
                    flush=True,
                )
    finally:
        down = lab.down()
        print(f"lab down: {down.seconds:.2f}s")


if __name__ == "__main__":
    main()
