"""Steps are found by name: each lives in the module named after it, so a playbook loads only its own."""

import subprocess
import sys
from pathlib import Path

from agent.runner.registry import load_steps

REPO = Path(__file__).resolve().parents[2]


def test_every_step_lives_in_the_module_of_its_name():
    for name, step_type in load_steps().items():
        assert step_type.function.__module__ == f"agent.steps.{name}", name


def test_a_smoke_playbook_does_not_import_the_database_layer_or_testinfra():
    code = (
        "import sys; from pathlib import Path; from agent.runner.playbook import load_playbook;"
        "load_playbook(Path('playbooks/smoke.yaml'));"
        "print(sorted(m for m in ('sqlalchemy', 'testinfra', 'agent.steps.license') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"
