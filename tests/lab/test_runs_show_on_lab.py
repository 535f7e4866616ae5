"""`ispagent runs show` of a scheduled run on the lab: the nightly job's run (the unit's ExecStart, run by hand as
systemd runs it), looked at the next morning, renders the same HTML and JSON as `--report-*` gave the job."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import SMOKE, ispagent, on_host, write_inventory

pytestmark = pytest.mark.lab


def test_runs_show_of_a_scheduled_run_renders_the_reports_the_job_wrote(lab, tmp_path):
    for host in lab.hosts:
        on_host(lab, host.name, "rm -rf /srv/ispagent-smoke")  # so the job changes something
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    units, state = tmp_path / "systemd", tmp_path / "state"
    added = ispagent(
        "schedule",
        "add",
        str(SMOKE),
        "-i",
        str(inventory),
        "--name",
        "lab-show",
        "--unit-dir",
        str(units),
        "--state-dir",
        str(state),
        "--report-html",
        str(tmp_path / "job.html"),
        "--ispagent",
        str(Path(sys.executable).parent / "ispagent"),
        state_dir=tmp_path,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    setting = dict(
        line.split("=", 1)
        for line in (units / "ispagent-lab-show.service").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    (assignment,) = shlex.split(setting["Environment"])
    key, value = assignment.split("=", 1)
    # The job as the timer starts it; --report-json added: the JSON report the job would have written.
    argv = shlex.split(setting["ExecStart"]) + ["--report-json", str(tmp_path / "job.json")]
    job = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, key: value}, timeout=300)
    assert job.returncode == 0, job.stdout + job.stderr
    (run_dir,) = (state / "runs").iterdir()
    shown = ispagent(
        "runs",
        "show",
        run_dir.name,
        "--report-html",
        str(tmp_path / "shown.html"),
        "--report-json",
        str(tmp_path / "shown.json"),
        state_dir=state,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert (tmp_path / "shown.html").read_bytes() == (tmp_path / "job.html").read_bytes()
    assert (tmp_path / "shown.json").read_bytes() == (tmp_path / "job.json").read_bytes()
    assert f"run {run_dir.name} finished: {len(lab.hosts)} host(s)" in shown.stdout
    assert "changed" in (tmp_path / "shown.html").read_text()
