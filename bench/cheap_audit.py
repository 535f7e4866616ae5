"""Benchmark (not a test): issue 24's audit and race figures, each beside the machine's CPU time and load.

1. `ispagent run` of the race's job on one host beside `python -c 'import paramiko'`, interleaved.
2. The race (bench/race.py, contenders interleaved, every repetition listed) at --race-sizes.
3. The nightly audit: `ispagent run playbooks/reprovision.yaml --only-drifted` over N clean lab hosts
   (installed once by install.yaml first, untimed), for each N of --audit-sizes (the issue: <= 5 s at
   100, <= 60 s at 1 000). Per run: wall, the run's CPU (wait4), the machine's CPU in that time (the
   hosts' sshd and probes too), load, drifted/clean counts from the report, the audit steps' median
   duration per host, and the processes started on three sampled hosts (ns_last_pid). Each audit is
   interleaved with its floor (bench/audit_floor.py: the same probes on paramiko directly, the same
   hosts at once), and the median ratio audit/floor is printed: a figure that does not move with the
   machine's speed, as the wall time does. --baseline interleaves the runs of another source tree
   (the code before a change) on the same lab.

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/cheap_audit.py [--audit-sizes 100,1000]
        [--race-sizes 50,100] [--repeat 5] [--skip race,single]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import race  # noqa: E402

from agent.lab import Lab  # noqa: E402
from agent.lab.mirror import write_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
AUDIT_STEPS = ("audit:facts", "audit:preflight", "audit:verify")


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def ispagent_run(
    playbook: Path, inventory: Path, forks: int, state: Path, work: Path, *extra: str, checkout: Path = REPO
) -> dict:
    """One `ispagent run` in a fresh process, timed from outside: wall, CPU, machine CPU, report.
    `checkout`: another source tree of ispagent to run instead (a baseline), with this venv."""
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
        *extra,
    ]
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state)}
    if checkout != REPO:
        env["PYTHONPATH"] = str(checkout)
    wall, cpu, machine, code, tail = race.timed_run(argv, env, checkout)
    hosts = json.loads(report.read_text())["hosts"] if report.exists() else []
    return {"wall": wall, "cpu": cpu, "machine": machine, "exit": code, "tail": tail, "hosts": hosts}


def last_pid(lab: Lab, name: str) -> int:
    """The last process (or thread) id host `name`'s PID namespace handed out."""
    return int(lab.exec(name, ["cat", "/proc/sys/kernel/ns_last_pid"]).stdout)


def pids_started(lab: Lab, name: str) -> tuple[int, int]:
    """(what one reading of ns_last_pid itself starts in the host, the last id handed out)."""
    first = last_pid(lab, name)
    second = last_pid(lab, name)
    return second - first, second


def drifted_hosts(hosts: list[dict]) -> int:
    """How many of a JSON report's hosts the audit found drifted (an unreachable host has no record)."""
    return sum(1 for host in hosts if (host.get("drift") or {}).get("drifted"))


def first_hosts_inventory(lab: Lab, size: int, work: Path) -> Path:
    """The lab's inventory cut to h1..h`size`, its key and known_hosts by absolute path."""
    import yaml

    data = yaml.safe_load(lab.inventory_path.read_text())
    data["ssh"]["known_hosts"] = str(lab.known_hosts_path)
    data["defaults"]["identity_file"] = str(lab.identity_file)
    data["hosts"] = {name: host for name, host in data["hosts"].items() if int(name[1:]) <= size}
    path = work / f"inventory-{size}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def audit_floor_spec(lab: Lab, inventory: Path, size: int, forks: int, work: Path) -> Path:
    """The spec bench/audit_floor.py runs: the first `size` hosts, `forks` at once, and the very
    programs the audit sends them (preflight's as given facts' address, verify's as given preflight's
    license.info, as in a clean audit)."""
    from audit_floor import IPV4_MARK

    from agent.panel.hostprobe import gather_script
    from agent.panel.panelprobe import panel_probe_script
    from agent.runner.plan import RunOptions, RunPlan
    from agent.stepkit.panelfiles import CALLS_DEST, IHTTPD_DEST, OPTIONS_DEST
    from agent.steps.facts import FACTS_SCRIPT

    plan = RunPlan.from_files(REPO / "playbooks" / "reprovision.yaml", inventory, RunOptions(state_dir=work))
    repository = plan.settings[plan.hosts[0].name].install.repository_url
    spec = {
        "hosts": [host.address for host in plan.hosts],  # the inventory holds the first `size` only
        "forks": forks,
        "key": str(lab.identity_file),
        "known_hosts": str(lab.known_hosts_path),
        "facts": FACTS_SCRIPT,
        "preflight": gather_script(repository, primary_ipv4=IPV4_MARK),
        "verify": panel_probe_script([OPTIONS_DEST, IHTTPD_DEST, CALLS_DEST], license_info=False),
    }
    path = work / f"audit-floor-{size}.json"
    path.write_text(json.dumps(spec))
    return path


def audit_floor_run(spec: Path) -> dict:
    """One run of the floor in a fresh process, timed from outside as the audit is."""
    argv = [sys.executable, str(REPO / "bench" / "audit_floor.py"), str(spec)]
    wall, cpu, machine, code, tail = race.timed_run(argv, dict(os.environ), REPO)
    return {"wall": wall, "cpu": cpu, "machine": machine, "exit": code, "tail": tail}


def audit(
    sizes: list[int],
    repeat: int,
    work: Path,
    baseline: Path | None,
    install_forks: int = 200,
    kept: Path | None = None,
    audit_forks: int | None = None,
) -> None:
    """`kept`: the lab and its run state live there and stay up (a later call finds its hosts installed)."""
    lab = Lab(kept / "lab" if kept else work / "audit-lab")
    state = kept / "state" if kept else work / "audit-state"
    installed = 0
    try:
        for size in sizes:
            began = time.perf_counter()
            # A kept lab may be bigger than this size: its other hosts stay, the audit takes the first.
            lab.up(max(size, len(lab.hosts)) if kept else size)
            print(f"lab up to {size} hosts: {time.perf_counter() - began:.1f} s", flush=True)
            inventory = first_hosts_inventory(lab, size, work)
            write_config(lab.dir / "services" / "mirror", install_seconds=0, license_retry_delay=0.2)
            if installed < size:
                done = ispagent_run(
                    REPO / "playbooks" / "install.yaml", inventory, min(size, install_forks), state, work
                )
                print(
                    f"  install.yaml over {size} hosts (untimed set-up): {done['wall']:.1f} s, exit {done['exit']}",
                    flush=True,
                )
                if done["exit"] != 0:
                    raise SystemExit(f"install failed:\n{done['tail']}")
                installed = size
            forks = min(size, audit_forks or size)
            floor_spec = audit_floor_spec(lab, inventory, size, forks, work)
            walls, ratios = [], []
            for repetition in range(repeat):
                before = load()
                sample = [f"h{index}" for index in sorted({1, size // 2, size})]
                started = {name: pids_started(lab, name) for name in sample}
                done = ispagent_run(
                    REPO / "playbooks" / "reprovision.yaml", inventory, forks, state, work, "--only-drifted"
                )
                drifted = drifted_hosts(done["hosts"])
                steps = {
                    name: [s["duration_s"] for h in done["hosts"] for s in h["steps"] if s["step"] == name]
                    for name in AUDIT_STEPS
                }
                medians = ", ".join(
                    f"{name.split(':')[1]} {statistics.median(times):.2f}" for name, times in steps.items() if times
                )
                print(
                    f"  {size} hosts, rep {repetition + 1}: --only-drifted --forks {forks} {done['wall']:6.2f} s wall "
                    f"{done['cpu']:6.2f} s CPU {done['machine']:6.2f} s machine CPU; exit {done['exit']}, "
                    f"{drifted} drifted of {len(done['hosts'])}, "
                    f"{sum(1 for host in done['hosts'] if host.get('status') not in ('ok', 'changed'))} not ok; "
                    f"median per host (s): {medians}; "
                    f"load {before} before",
                    flush=True,
                )
                processes = {name: last_pid(lab, name) - started[name][1] - started[name][0] for name in sample}
                print(f"    processes started on {', '.join(sample)} (sshd's own included): {processes}", flush=True)
                floor = audit_floor_run(floor_spec)
                print(
                    f"  {size} hosts, rep {repetition + 1}: floor (paramiko, the same probes) {floor['wall']:6.2f} s wall "
                    f"{floor['cpu']:6.2f} s CPU {floor['machine']:6.2f} s machine CPU; exit {floor['exit']}"
                    + (f"\n{floor['tail']}" if floor["exit"] else ""),
                    flush=True,
                )
                if done["exit"] == 0:
                    walls.append(done["wall"])
                    if floor["exit"] == 0:
                        ratios.append(done["wall"] / floor["wall"])
                if baseline:
                    before = load()
                    done = ispagent_run(
                        baseline / "playbooks" / "reprovision.yaml",
                        inventory,
                        forks,
                        state,
                        work,
                        "--only-drifted",
                        checkout=baseline,
                    )
                    drifted = drifted_hosts(done["hosts"])
                    print(
                        f"  {size} hosts, rep {repetition + 1}: baseline {done['wall']:6.2f} s wall "
                        f"{done['cpu']:6.2f} s CPU {done['machine']:6.2f} s machine CPU; exit {done['exit']}, "
                        f"{drifted} drifted of {len(done['hosts'])}; load {before} before",
                        flush=True,
                    )
            if walls:
                print(
                    f"{size} hosts: --only-drifted median {statistics.median(walls):.2f} s over {len(walls)} runs "
                    f"({os.cpu_count()} CPUs)"
                    + (
                        f"; audit/floor median {statistics.median(ratios):.2f}x "
                        f"(each: {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
                        if ratios
                        else "; no floor run ended well"
                    )
                    + "\n",
                    flush=True,
                )
    finally:
        if kept:
            print(f"audit lab kept in {kept} (ispagent lab down --dir {lab.dir})", flush=True)
        else:
            down = lab.down()
            print(f"audit lab down: {down.seconds:.1f} s", flush=True)


def single_host(repeat: int, work: Path) -> None:
    """`ispagent run` of the race's job on one host beside `python -c 'import paramiko'`, interleaved."""
    lab = Lab(work / "single-lab")
    try:
        lab.up(1)
        job = race.Job(work, lab, 1)
        state = work / "single-state"
        paramiko = ([sys.executable, "-c", "import paramiko"], dict(os.environ))
        race.timed_run(*paramiko, REPO)
        race.run_contender(job, "ispagent", None, state)  # warm-up
        figures: dict[str, list[tuple[float, float]]] = {"ispagent": [], "import paramiko": []}
        for repetition in range(repeat):
            wall, cpu, _, code, tail = race.run_contender(job, "ispagent", None, state)
            if code != 0:
                raise SystemExit(f"ispagent on one host failed:\n{tail}")
            figures["ispagent"].append((wall, cpu))
            wall2, cpu2, *_ = race.timed_run(*paramiko, REPO)
            figures["import paramiko"].append((wall2, cpu2))
            print(
                f"  1 host, rep {repetition + 1}: ispagent run {wall:.3f} s wall {cpu:.3f} s CPU; "
                f"python -c 'import paramiko' {wall2:.3f} s wall {cpu2:.3f} s CPU (load {load()})",
                flush=True,
            )
        for name, values in figures.items():
            print(
                f"1 host: {name:<15} median {statistics.median(v[0] for v in values):.3f} s wall, "
                f"{statistics.median(v[1] for v in values):.3f} s CPU",
                flush=True,
            )
    finally:
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-sizes", default="100,1000")
    parser.add_argument("--audit-repeat", type=int, default=3)
    parser.add_argument("--race-sizes", default="50,100")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: audit, race, single")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another ispagent source tree whose audit runs interleave "
        "with this one's (e.g. a `git archive` of the commit before)",
    )
    parser.add_argument(
        "--install-forks", type=int, default=200, help="forks of the untimed install.yaml that sets up the audit's lab"
    )
    parser.add_argument(
        "--lab-dir",
        type=Path,
        help="keep the audit's lab and its run state in DIR, up after the bench; a later call with the same "
        "DIR finds the hosts installed (its set-up install.yaml changes nothing) and audits the first N of them",
    )
    parser.add_argument(
        "--audit-forks", type=int, help="--forks of the timed audits (default: the size, every host at once)"
    )
    options = parser.parse_args()
    skip = set(filter(None, options.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="ispagent-cheap-audit-"))
    # As users run it: Python writes and reads its bytecode caches. A shell that sets
    # PYTHONDONTWRITEBYTECODE would have ispagent compile its own modules on every run (the peers'
    # and paramiko's were compiled by pip); the warm-up runs write them.
    dropped = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    print(
        f"{os.cpu_count()} CPUs, load {load()} at start"
        f"{'; PYTHONDONTWRITEBYTECODE unset for the runs' if dropped else ''}",
        flush=True,
    )
    try:
        if "single" not in skip:
            single_host(options.repeat, work)
        if "race" not in skip:
            race.race(
                [int(size) for size in options.race_sizes.split(",")],
                options.repeat,
                ["ispagent", "pyinfra", "floor"],
                work,
                None,
            )
        if "audit" not in skip:  # last: its largest size takes longest (install.yaml over every host first)
            audit(
                [int(size) for size in options.audit_sizes.split(",")],
                options.audit_repeat,
                work,
                options.baseline,
                options.install_forks,
                options.lab_dir,
                options.audit_forks,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
