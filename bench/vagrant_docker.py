"""The main job over N Vagrant docker machines (not a test, not in CI; needs root and docker.io).

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/vagrant_docker.py [--machines 10] [--repeat 1]

Each repeat, from nothing: `ispagent lab docker up` (dockerd, services, image import), `vagrant up
--provider=docker`, `vagrant ssh-config | ispagent inventory from-vagrant`, `ispagent run
playbooks/install.yaml` twice, `vagrant destroy -f`, `ispagent lab docker down`. Prints each time,
the memory after the rollout (the containers' own cgroup figure from `docker stats`, and the
resident memory of dockerd, containerd, its shims and docker-proxy), the vfs data root's size, and
both runs' results.
Medians over the repeats at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from vagrantkit import VagrantDockerSession, leftovers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    for repeat in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory(prefix="ispagent-bench-vagrant-") as work:
            for name, value in one_round(VagrantDockerSession(Path(work), args.machines)).items():
                figures.setdefault(name, []).append(value)
        print(f"round {repeat}: " + ", ".join(f"{name} {values[-1]:.1f}" for name, values in figures.items()))
    print(f"medians over {args.repeat} round(s), {args.machines} machines:")
    for name, values in figures.items():
        print(f"  {name:<28} {statistics.median(values):9.1f}")


def one_round(session: VagrantDockerSession) -> dict[str, float]:
    figures: dict[str, float] = {}
    try:
        figures["lab docker up s"] = _timed(session.lab_up)
        figures["vagrant up s"] = _timed(lambda: session.vagrant("up", "--provider=docker", timeout=1800))
        figures["data root GB"] = _size_gb(session.lab_dir / "docker" / "data")
        figures["from-vagrant s"] = _timed(session.from_vagrant)
        for label in ("first run", "second run"):
            report = session.work / f"{label.replace(' ', '-')}.json"
            figures[f"{label} s"] = _timed(lambda: session.run("install.yaml", "--report-json", str(report)), ok=(0,))
            summary = json.loads(report.read_text())["summary"]
            actions = sorted(
                {host["license"]["action"] for host in json.loads(report.read_text())["hosts"] if host.get("license")}
            )
            print(f"  {label}: {summary}; license actions {actions}")
        # After the rollout: each machine runs sshd and the (emulated) panel.
        figures["containers' memory MB"] = _containers_memory_mb(session)
        figures["dockerd+containerd+shims MB"] = _rss_mb(("dockerd", "containerd", "containerd-shim", "docker-proxy"))
    finally:
        figures["vagrant destroy s"] = _timed(lambda: session.vagrant("destroy", "-f", timeout=1800), ok=None)
        figures["lab docker down s"] = _timed(session.lab_down, ok=None)
        left = leftovers(session)
        print(f"  left on the machine: {left or 'nothing'}")
    return figures


def _timed(action, ok: tuple[int, ...] | None = (0,)) -> float:
    began = time.monotonic()
    done: subprocess.CompletedProcess = action()
    seconds = time.monotonic() - began
    if ok is not None and done.returncode not in ok:
        raise SystemExit(f"failed ({done.returncode}): {done.args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def _rss_mb(commands: tuple[str, ...]) -> float:
    """The resident memory of every process whose command is one of `commands` or starts with one."""
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue
        if status.get("Name", "").strip().startswith(commands) and "VmRSS" in status:
            total += int(status["VmRSS"].split()[0])
    return total / 1024


def _containers_memory_mb(session: VagrantDockerSession) -> float:
    stats = session.docker("stats", "--no-stream", "--format", "{{.MemUsage}}").stdout.split("\n")
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1024 / 1024}
    total = 0.0
    for line in filter(None, stats):
        used = line.split("/")[0].strip()
        unit = next(unit for unit in units if used.endswith(unit))
        total += float(used.removesuffix(unit)) * units[unit]
    return total


def _size_gb(path: Path) -> float:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False)
    return int(done.stdout.split()[0]) / 1e9 if done.returncode == 0 else float("nan")


if __name__ == "__main__":
    main()
