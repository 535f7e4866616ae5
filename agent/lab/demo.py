"""The end-to-end demo: a lab, a playbook run over it, and a second run that must change nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.lab.lab import Lab, Progress
from agent.runner.events import RunListener
from agent.runner.run import RunOptions, RunPlan, RunResult, start_run


@dataclass(frozen=True)
class DemoResult:
    first: RunResult
    second: RunResult
    reports: tuple[Path, Path]

    @property
    def idempotent(self) -> bool:
        return all(host.status == "ok" for host in self.second.hosts)


def run_demo(
    lab_dir: Path, hosts: int, playbook: Path, listener: RunListener, progress: Progress | None = None
) -> DemoResult:
    """Bring the lab up with `hosts` hosts, run `playbook` over it twice, write both reports."""
    from agent.runner.report import write_report

    lab = Lab(lab_dir)
    if not (lab.dir / "services").exists():
        # A lab brought up anew gets a new partner account (`lab down` removes the services): the
        # ledger and runs kept in its state dir from the last one claim licenses this account never
        # sold, and the second run would order one again.
        shutil.rmtree(lab.dir / "state", ignore_errors=True)
    lab.up(hosts, progress)
    options = RunOptions(state_dir=lab.dir / "state")
    results = []
    reports = []
    for attempt in ("first", "second"):
        result = start_run(RunPlan.from_files(playbook, lab.inventory_path, options), listener)
        report = lab.dir / "reports" / f"{attempt}-run.json"
        write_report(report, result)
        results.append(result)
        reports.append(report)
    return DemoResult(results[0], results[1], (reports[0], reports[1]))
