"""Panel templates: what they render, and a missing variable -> an error naming template, line and variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.errors import StepFailed
from agent.runner.playbook import load_playbook
from agent.shipped import templates_dir
from agent.stepkit.templates import render_template

REPO = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "installer" / "template_cases.yaml").read_text())
VARS = {
    **load_playbook(REPO / "playbooks" / "install.yaml").vars,
    "host": {"name": "h1", "address": "198.18.0.2", "groups": []},
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['template']}-{c['drop']}")
def test_template_with_a_missing_variable_names_template_line_and_variable(case):
    variables = {key: value for key, value in VARS.items() if key != case["drop"]}
    if "users" in case:
        variables["panel_users"] = case["users"]
    with pytest.raises(StepFailed) as error:
        render_template([templates_dir()], case["template"], variables)
    assert str(error.value) == case["error"]


def test_templates_render_options_and_ihttpd():
    variables = {
        **VARS,
        "panel_options": ["DisableAutoUpdate"],
        "panel_params": {"WebscriptsRepoUrl": "http://repo.example/"},
        "ihttpd_allow": ["10.0.0.0/8"],
    }
    options = render_template([templates_dir()], "ispmanager/ispagent.conf.j2", variables)
    assert options.splitlines()[1:] == ["Option DisableAutoUpdate", "WebscriptsRepoUrl http://repo.example/"]
    ihttpd = render_template([templates_dir()], "ispmanager/ihttpd.conf.j2", variables)
    assert ihttpd.splitlines()[1:] == ["listen {", "\tip 0.0.0.0", "\tport 1500", "\tallow_ip 10.0.0.0/8", "}"]
