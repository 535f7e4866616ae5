"""Playbooks are checked in full before any host is touched; each problem is one exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import PlaybookError
from agent.runner.playbook import load_playbook
from agent.runner.registry import load_steps
from agent.runner.registry import load_steps

BAD = Path(__file__).parent / "data" / "playbooks" / "bad"
REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "unknown_step.yaml": "4: steps[1].templat: unknown step 'templat' (did you mean 'template'?); known steps: " + ", ".join(sorted(load_steps())),
    "unknown_param.yaml": "3: steps[0].upload.mdoe: unknown parameter of step 'upload' (did you mean 'mode'?); known: src, dest, mode",
    "missing_param.yaml": "3: steps[0].upload.dest: required parameter of step 'upload' is missing",
    "decimal_mode.yaml": "3: steps[0].upload.mode: write modes as quoted octal strings, e.g. '0644' (got 644)",
    "relative_dest.yaml": "3: steps[0].upload.dest: dest must be an absolute file path on the host, e.g. /etc/motd (got 'etc/motd')",
    "unknown_top_key.yaml": "2: step: unknown key (did you mean 'steps'?); known: name, description, vars, steps",
    "no_steps.yaml": "2: steps: give a non-empty list of steps",
    "two_steps_in_one.yaml": "3: steps[0]: give exactly one step per entry (found facts, shell)",
    "syntax_error.yaml": "4: YAML syntax error: expected ',' or '}', but got '<stream end>'; "
                         "check the indentation and quoting here and on the line above",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_playbook_gives_one_exact_line(name):
    with pytest.raises(PlaybookError) as error:
        load_playbook(BAD / name)
    assert str(error.value) == f"{BAD / name}:{EXPECTED[name]}"


def test_missing_local_file_is_caught_at_load():
    with pytest.raises(PlaybookError, match=r"missing_template.yaml:3: steps\[0\].template.src: no file 'missing.j2' in "):
        load_playbook(BAD / "missing_template.yaml")


def test_repeated_steps_get_unique_ids_and_labels_win():
    playbook = load_playbook(REPO / "playbooks" / "smoke.yaml")
    assert [s.id for s in playbook.steps] == ["facts", "upload", "template", "shell"]
    assert playbook.vars == {"greeting": "hello"}
    assert playbook.steps[1].params.mode == 0o640


def test_bad_playbook_on_the_cli_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from agent.cli.main import cli

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  h1: {address: 198.18.0.2}\n")
    result = CliRunner().invoke(cli, ["run", str(BAD / "unknown_step.yaml"), "-i", str(inventory), "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"ispagent: error: {BAD / 'unknown_step.yaml'}:{EXPECTED['unknown_step.yaml']}"]
    assert not (tmp_path / "runs").exists()  # nothing journaled, nothing touched


def test_merge_keys_work_in_step_parameters(tmp_path):
    (tmp_path / "motd.txt").write_text("hello\n")
    path = tmp_path / "merged.yaml"
    path.write_text(
        "name: merged\n"
        "steps:\n"
        '  - upload: &motd {src: motd.txt, dest: /etc/motd, mode: "0644"}\n'
        "  - upload: {<<: *motd, dest: /etc/issue}\n"
    )
    first, second = load_playbook(path).steps
    assert (second.params.src, second.params.dest, second.params.mode) == ("motd.txt", "/etc/issue", 0o644)
    assert first.params.dest == "/etc/motd"


def test_a_duplicate_step_parameter_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("steps:\n  - shell:\n      command: ls\n      command: rm\n")
    with pytest.raises(PlaybookError) as error:
        load_playbook(path)
    assert str(error.value).startswith(f"{path}:4: steps[0].shell.command: key 'command' is defined twice (first on line 3)")
