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


# What a run imported by the time it ended (the command ends with os._exit, so the probe writes it first).
MODULES_PROBE = """
import json, sys
import agent.cli.main as command
ended, note = command.exit_without_teardown, sys.argv[1]
def noted(code):
    with open(note, "w") as out:
        unused = [name for name in sys.modules if name.startswith("pydantic") or name == "agent.runner.standing"]
        json.dump({"code": code, "unused": sorted(unused)}, out)
    ended(code)
command.exit_without_teardown = noted
sys.argv = ["ispagent", *sys.argv[2:]]
command.main()
"""


@pytest.mark.parametrize(
    "last_step",
    ["{shell: {command: hostname, bogus: 1}}", "{upload: {src: motd, dest: /etc/motd, mode: '0644'}}"],
    ids=["refused-parameter", "every-parameter-read"],
)
def test_a_run_reads_every_own_steps_parameters_without_importing_pydantic(tmp_path: Path, last_step):
    """pydantic's import and its model validators were a quarter of a small run's CPU; the project's
    steps' parameters are read without it (agent/runner/params.py). The account's standing is read
    after the hosts, by runs that use the account: its module is not imported before."""
    (tmp_path / "motd").write_text("hello\n")
    (tmp_path / "motd.j2").write_text("{{ fqdn }}\n")
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(
        "steps:\n  - shell: {command: hostname, creates: /x, unless: 'true', changes: no, timeout: '2.5'}\n"
        "  - template: {src: motd.j2, dest: /etc/motd}\n  - license_release: {policy: park}\n"
        f"  - {last_step}\n"
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("ssh: {known_hosts: /dev/null}\nhosts:\n  h1: {address: 198.18.0.2}\n")
    noted = tmp_path / "noted.json"
    done = subprocess.run(
        # A limit no host matches ends the run after the playbook is read, before any host is contacted.
        [sys.executable, "-c", MODULES_PROBE, str(noted), "run", str(playbook), "-i", str(inventory), "-l", "nobody"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    found = json.loads(noted.read_text())
    assert found == {"code": 2, "unused": []}, done.stderr
    expected = "unknown parameter of step 'shell'" if "bogus" in last_step else "'nobody' matches no host"
    assert expected in done.stderr, done.stderr


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
