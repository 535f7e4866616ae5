"""`ispagent --version`, `--help` and `inventory check` load only what they use: each command's
module is imported when that command runs, so start-up does not pay for SSH, the ledger or reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("paramiko", "fabric", "sqlalchemy", "rich", "matplotlib", "testinfra", "httpx", "jinja2")

PROBE = """
import json, sys
from agent.cli.main import cli
try:
    cli(args=sys.argv[1:], prog_name="ispagent")
except SystemExit as end:
    code = end.code
print(json.dumps({"code": code, "loaded": sorted(name for name in %r if name in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


def loaded_by(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    verdict = json.loads(done.stderr.strip().splitlines()[-1])
    return verdict["code"], verdict["loaded"]


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_heavy_library(args):
    code, loaded = loaded_by(*args)
    assert (code, loaded) == (0, [])


def test_inventory_check_imports_no_ssh_ledger_or_http_library(tmp_path: Path):
    inventory = tmp_path / "inventory.yaml"
    hosts = "".join(f"  h{index}: {{address: 198.18.0.{index}}}\n" for index in range(2, 22))
    inventory.write_text(f"ssh: {{known_hosts: /dev/null}}\nhosts:\n{hosts}")
    code, loaded = loaded_by("inventory", "check", "-i", str(inventory), "--ssh-config", "/dev/null")
    assert (code, loaded) == (0, [])


def test_help_still_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, timeout=60)
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"inventory", "run", "runs", "lab", "ledger", "turnover", "forecast", "plan", "schedule"} <= listed


def test_inventory_from_ansible_is_still_a_subcommand():
    done = subprocess.run(
        [sys.executable, "-m", "agent", "inventory", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "from-ansible" in done.stdout
