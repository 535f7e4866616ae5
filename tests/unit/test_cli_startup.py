"""`ispagent --version`, `--help` and `inventory check` load only what they use: each command's
module is imported when that command runs, so start-up does not pay for SSH, the ledger or reports."""

from __future__ import annotations

import json
import os
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


# Every entry-point group the command looks up, written as it happens (the command ends with os._exit).
GROUPS_PROBE = """
import importlib.metadata, sys
lookup, groups = importlib.metadata.entry_points, sys.argv[1]
def logged(**selection):
    with open(groups, "a") as log:
        log.write(repr(selection.get("group")) + "\\n")
    return lookup(**selection)
importlib.metadata.entry_points = logged
from agent.cli.main import main
sys.argv = ["ispagent", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("setting, scanned", [(None, False), ("", True)], ids=["default", "plugins-enabled-by-user"])
def test_a_run_does_not_scan_installed_packages_for_pydantic_plugins(tmp_path: Path, setting, scanned):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("steps:\n  - shell: {command: hostname, bogus: 1}\n")  # refused by the params model
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("ssh: {known_hosts: /dev/null}\nhosts:\n  h1: {address: 198.18.0.2}\n")
    groups = tmp_path / "groups"
    env = {key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"}
    if setting is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = setting
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            GROUPS_PROBE,
            str(groups),
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "--ssh-config",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "bogus" in done.stderr + done.stdout, done.stderr
    looked_up = groups.read_text().split() if groups.exists() else []
    assert ("'pydantic'" in looked_up) == scanned, looked_up


# What `import httpx` brings in under the command's main(): the command itself is replaced by the import.
HTTPX_PROBE = """
import json, sys
import agent.cli.main as command
def talk_to_partner(**options):
    import httpx
    httpx.Client(timeout=1).close()  # httpx itself still works
    print(json.dumps(sorted(name for name in ("rich", "pygments") if name in sys.modules)), file=sys.stderr)
    raise SystemExit(0)
command.cli = talk_to_partner
command.main()
"""


def test_importing_httpx_under_the_command_leaves_its_command_line_client_out():
    done = subprocess.run([sys.executable, "-c", HTTPX_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    installed = subprocess.run(
        [sys.executable, "-c", "import httpx, sys; print('rich' in sys.modules)"], capture_output=True, text=True
    )
    assert installed.stdout.strip() == "True"  # without main(), httpx would have brought rich in


# What `import paramiko` brings in under the command's main(), and that invoke still serves when used.
INVOKE_PROBE = """
import json, sys
import agent.cli.main as command
def connect_somewhere(**options):
    import paramiko
    found = {"after_paramiko": "invoke.tasks" in sys.modules}
    config = paramiko.SSHConfig.from_text('Match exec "exit 0"\\n  User matched\\n')
    found["match_exec_user"] = config.lookup("h1").get("user")  # paramiko runs the command through invoke
    from invoke import Context
    found["context"] = Context.__module__
    print(json.dumps(found), file=sys.stderr)
    raise SystemExit(0)
command.cli = connect_somewhere
command.main()
"""


def test_importing_paramiko_under_the_command_defers_invoke_until_it_is_used():
    pytest.importorskip("invoke")  # installed with the fabric extra
    done = subprocess.run([sys.executable, "-c", INVOKE_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stderr.strip().splitlines()[-1])
    assert found == {"after_paramiko": False, "match_exec_user": "matched", "context": "invoke.context"}
    installed = subprocess.run(
        [sys.executable, "-c", "import paramiko, sys; print('invoke.tasks' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert installed.stdout.strip() == "True"  # without main(), paramiko would have run invoke


STEPS_PROBE = """
import json, sys
from agent.runner.registry import load_steps
steps = load_steps(["facts", "preflight", "license", "installer", "configure", "panel_service", "verify", "report"])
print(json.dumps({"license_uses_account": steps["license"].uses_account,
                  "loaded": sorted(name for name in ("sqlalchemy", "httpx") if name in sys.modules)}))
"""


def test_checking_a_playbook_of_every_install_step_loads_no_ledger_or_http_library():
    """The license step's implementation (the ledger, the partner client) loads when a host runs it, not
    when a playbook naming it is read: a run's serial start-up is shorter by that much."""
    done = subprocess.run([sys.executable, "-c", STEPS_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"license_uses_account": True, "loaded": []}
