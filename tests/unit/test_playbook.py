"""Playbooks are checked in full before any host is touched; each problem is one exact line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import PlaybookError
from agent.runner.playbook import load_playbook
from agent.runner.registry import load_steps

BAD = Path(__file__).parents[1] / "data" / "playbooks" / "bad"
REPO = Path(__file__).resolve().parents[2]

EXPECTED = {
    "unknown_step.yaml": "4: steps[1].templat: unknown step 'templat' (did you mean 'template'?); known steps: "
    + ", ".join(sorted(load_steps())),
    "unknown_param.yaml": "3: steps[0].upload.mdoe: unknown parameter of step 'upload' (did you mean 'mode'?); known: src, dest, mode",
    "missing_param.yaml": "3: steps[0].upload.dest: required parameter of step 'upload' is missing",
    "decimal_mode.yaml": "3: steps[0].upload.mode: write modes as quoted octal strings, e.g. '0644' (got 644)",
    "relative_dest.yaml": "3: steps[0].upload.dest: dest must be an absolute file path on the host, e.g. /etc/motd (got 'etc/motd')",
    "unknown_top_key.yaml": "2: step: unknown key (did you mean 'steps'?); known: name, description, vars, source_dirs, steps",
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
    with pytest.raises(
        PlaybookError, match=r"missing_template.yaml:3: steps\[0\].template.src: no file 'missing.j2' in "
    ):
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
    result = CliRunner().invoke(
        cli, ["run", str(BAD / "unknown_step.yaml"), "-i", str(inventory), "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"ispagent: error: {BAD / 'unknown_step.yaml'}:{EXPECTED['unknown_step.yaml']}"
    ]
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
    assert str(error.value).startswith(
        f"{path}:4: steps[0].shell.command: key 'command' is defined twice (first on line 3)"
    )


# --- local files: inside the playbook's source directories, regular, bounded --------------------------


def _playbook_with_src(tmp_path: Path, src: str, *, step: str = "upload", extra: str = "") -> Path:
    (tmp_path / "play").mkdir(exist_ok=True)
    path = tmp_path / "play" / "playbook.yaml"
    path.write_text(f"{extra}steps:\n  - {step}: {{src: '{src}', dest: /tmp/x}}\n")
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(PlaybookError) as error:
        load_playbook(path)
    assert "\n" not in str(error.value)
    return str(error.value)


def _dirs(tmp_path: Path) -> str:
    return f"{tmp_path / 'play'} or {tmp_path / 'templates'}"


@pytest.mark.parametrize("src", ["/etc/shadow", "../../../../../../../../etc/passwd", "~/.ssh/id_ed25519"])
def test_a_src_outside_the_playbooks_directories_is_refused_at_load(tmp_path, src, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("a private key\n")
    monkeypatch.setenv("HOME", str(home))
    path = _playbook_with_src(tmp_path, src)
    assert _load_error(path) == (
        f"{path}:2: steps[0].upload.src: '{src}' is outside the playbook's source directories ({_dirs(tmp_path)}); "
        "copy it there, or name its directory under source_dirs: in the playbook"
    )


def test_a_symlink_out_of_the_playbooks_directory_is_refused(tmp_path):
    path = _playbook_with_src(tmp_path, "motd", step="template")
    (tmp_path / "play" / "motd").symlink_to("/etc/passwd")
    assert "steps[0].template.src: 'motd' is outside the playbook's source directories" in _load_error(path)


def test_a_fifo_as_src_is_refused_at_load_even_for_a_dry_run(tmp_path):
    from click.testing import CliRunner

    from agent.cli.main import cli

    path = _playbook_with_src(tmp_path, "pipe")
    os.mkfifo(tmp_path / "play" / "pipe")  # nobody writes it: reading would block forever
    assert _load_error(path) == f"{path}:2: steps[0].upload.src: 'pipe' is a FIFO, not a regular file"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  h1: {address: 198.18.0.2}\n")
    result = CliRunner().invoke(
        cli, ["run", str(path), "-i", str(inventory), "--dry-run", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "is a FIFO, not a regular file" in result.output


def test_source_dirs_lets_a_playbook_name_another_directory_explicitly(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "motd").write_text("hello\n")
    path = _playbook_with_src(tmp_path, str(shared / "motd"), extra=f"source_dirs: [{shared}, /dev]\n")
    assert load_playbook(path).source_dirs[2:] == [shared, Path("/dev")]
    (tmp_path / "play" / "zero").symlink_to("/dev/zero")  # inside /dev now, but still not a regular file
    path.write_text(f"source_dirs: [{shared}, /dev]\nsteps:\n  - upload: {{src: zero, dest: /tmp/x}}\n")
    assert _load_error(path) == f"{path}:3: steps[0].upload.src: 'zero' is a character device, not a regular file"
    path.write_text("source_dirs: [nowhere]\nsteps: [facts]\n")
    assert _load_error(path) == (
        f"{path}:1: source_dirs: 'nowhere' is not a directory; a relative path starts at the playbook's directory"
    )
