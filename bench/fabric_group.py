"""Benchmark: the smoke playbook over lab hosts through ispagent's own connector and through a fabric group
(agent/fabric: fabric builds and opens the connections, ispagent runs the commands), and what building
the fabric Connections alone costs.

Alternates the two for --repeat rounds (the first round of each changes the hosts, later ones change
nothing) and prints each round's wall and this process's CPU seconds, then the medians. Not a test:
it gates nothing. Run as root, under the machine's lab lock (its lab comes up beside any other):

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/fabric_group.py [--hosts 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import fabric  # noqa: E402

from agent.fabric import PlaybookGroup  # noqa: E402
from agent.inventory.loader import load_inventory  # noqa: E402
from agent.lab import Lab  # noqa: E402
from agent.runner.playbook import load_playbook  # noqa: E402
from agent.runner.run import RunOptions, RunPlan, start_run  # noqa: E402

SMOKE = REPO / "playbooks" / "smoke.yaml"


def through_ispagent(inventory: Path, state_dir: Path) -> int:
    loaded = load_inventory(inventory)
    plan = RunPlan(load_playbook(SMOKE), loaded.hosts, RunOptions(state_dir=state_dir), loaded.ssh, inventory)
    return start_run(plan, lambda event: None).exit_code


def through_fabric_group(inventory: Path, state_dir: Path, lab: Lab) -> int:
    config = fabric.Config(runtime_ssh_path=str(lab.ssh_config_path))
    group = PlaybookGroup(*[host.name for host in lab.hosts], config=config)
    try:
        return group.apply(SMOKE, inventory=inventory, state_dir=state_dir).exit_code
    finally:
        group.close()


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    code = work()
    assert code == 0, f"the run ended with exit code {code}"
    return time.perf_counter() - wall, time.process_time() - cpu


def building_cost(lab: Lab, clone: bool) -> float:
    """CPU seconds to build (not open) a fabric Connection per lab host from one ssh_config: sharing
    its Config, as fabric's Group and agent/fabric do, or each with a clone of it."""
    config = fabric.Config(runtime_ssh_path=str(lab.ssh_config_path))
    cpu = time.process_time()
    for host in lab.hosts:
        fabric.Connection(host.name, config=config.clone() if clone else config)
    return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="ispagent-bench-fabric-"))
    lab = Lab(work_dir / "lab")
    try:
        lab.up(options.hosts)
        inventory = lab.inventory_path
        runners = {
            "ispagent connector": lambda: through_ispagent(inventory, work_dir / "state"),
            "fabric group": lambda: through_fabric_group(inventory, work_dir / "state", lab),
        }
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
        print(f"smoke playbook on {options.hosts} lab hosts (round 1 of each changes the hosts):")
        for round_number in range(1, options.repeat + 1):
            for name, runner in runners.items():
                wall, cpu = timed(runner)
                figures[name].append((wall, cpu))
                print(f"  round {round_number}  {name:<19} wall {wall:5.2f} s  CPU {cpu:5.2f} s", flush=True)
        for name, rounds in figures.items():
            later = rounds[1:] or rounds
            wall, cpu = statistics.median(w for w, _ in later), statistics.median(c for _, c in later)
            print(f"median of rounds 2..{options.repeat}, {name:<19} wall {wall:5.2f} s  CPU {cpu:5.2f} s")
        for clone in (False, True):
            cost = statistics.median(building_cost(lab, clone) for _ in range(options.repeat))
            print(
                f"building {options.hosts} fabric Connections, {'a Config clone each' if clone else 'one Config'}: "
                f"median {cost * 1000:.0f} ms of CPU ({cost / options.hosts * 1000:.1f} ms each)"
            )
    finally:
        lab.down()


if __name__ == "__main__":
    main()
