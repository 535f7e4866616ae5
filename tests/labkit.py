"""Helpers for tests that run ispagent against the session's lab (see the `lab` fixture)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "playbooks" / "smoke.yaml"


def write_inventory(lab, path: Path, *, hosts: dict | None = None, ssh: dict | None = None, **defaults) -> Path:
    """An inventory of the lab's hosts (or of `hosts`), with absolute paths to its key and known_hosts."""
    data = {
        "ssh": {"known_hosts": str(lab.known_hosts_path), "connect_timeout": 5, **(ssh or {})},
        "defaults": {
            "user": "root",
            "identity_file": str(lab.identity_file),
            "vars": {"edition": "lite", "period": "monthly", "release": "stable"},
            **defaults,
        },
        "hosts": hosts
        if hosts is not None
        else {h.name: {"address": h.address, "vars": {"fqdn": h.fqdn}} for h in lab.hosts},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_playbook(path: Path, steps: list) -> Path:
    path.write_text(yaml.safe_dump({"name": path.stem, "steps": steps}, sort_keys=False))
    return path


def ispagent(*args: str, state_dir: Path, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as a user or a cron job runs it."""
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        **popen,
    )


def read_report(path: Path) -> dict:
    return json.loads(path.read_text())


def events(state_dir: Path, run_id: str) -> list[dict]:
    lines = (state_dir / "runs" / run_id / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def on_host(lab, name: str, command: str) -> subprocess.CompletedProcess:
    """Run `command` inside a lab host without SSH: checks that do not trust our own transport."""
    return lab.exec(name, ["sh", "-c", command])


def wait_until(
    condition, process: subprocess.Popen | None = None, what: str = "the condition", timeout: float = 60
) -> None:
    """Poll `condition` until true; fail naming `what` on timeout or when `process` has exited first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"{what}: the process exited first"
        assert time.monotonic() < deadline, f"{what} (waited {timeout:.0f} s)"
        time.sleep(0.05)


RUN_ID = re.compile(r"\b(\d{8}T\d{6}-[0-9a-f]{6})\b")


def read_run_id(process: subprocess.Popen) -> str:
    """The run id from the first output line naming one (stdout's "run ID: ..." or stderr's
    "ispagent: run ID started", whichever comes first when both are piped together)."""
    for line in process.stdout:
        found = RUN_ID.search(line)
        if found:
            return found.group(1)
    raise AssertionError(f"the run printed no run id (exit {process.wait()})")
