"""Third-party steps plug in through the entry-point group `ispagent.steps`, hand values to later steps
under typed keys, and a playbook that asks for a value before any step makes it is refused when loaded."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import PlaybookError, StepRegistryError
from agent.inventory.model import Endpoint, Host
from agent.runner.playbook import playbook_from_data
from agent.runner.registry import StepRegistry
from agent.runner.run import RunOptions, RunPlan, start_run
from agent.testing import ExpectedCommand, ReplayConnector

PLUGIN = textwrap.dedent('''
    from agent.hoststate import StateKey
    from agent.runner.registry import NoParams, changed, ok, step

    GREETING = StateKey("greeting", "the greeting (the greet step)")

    @step("greet", NoParams, provides=(GREETING,), rerun_on_resume=True)
    def greet(ctx, params):
        """Say hello on the host and remember what it answered."""
        ctx.state.set(GREETING, ctx.connection.run("echo hello").stdout.strip())
        return ok("greeted")

    @step("answer", NoParams, needs=(GREETING,))
    def answer(ctx, params):
        """Answer the greeting."""
        ctx.connection.run(["echo", ctx.state.get(GREETING) + " back"])
        return changed("answered")
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Path:
    """A package installed the way pip installs one: its module and a dist-info naming its entry points."""
    (tmp_path / "greeting_steps.py").write_text(PLUGIN)
    info = tmp_path / "greeting_steps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greeting-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[ispagent.steps]\ngreet = greeting_steps:greet\nanswer = greeting_steps:answer\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("greeting_steps", None)


def test_a_published_step_runs_and_hands_its_value_to_a_later_step(plugin, tmp_path):
    playbook = playbook_from_data({"steps": ["facts", "greet", "answer"]}, tmp_path)
    assert [s.type.name for s in playbook.steps] == ["facts", "greet", "answer"]
    host = Host("h1", Endpoint("198.18.0.2"))
    connector = ReplayConnector(
        {
            "h1": [
                ExpectedCommand(contains="os-release", stdout="os_id=debian\n"),
                ExpectedCommand("echo hello", stdout="hello\n"),
                ExpectedCommand("echo 'hello back'"),
            ]
        }
    )
    result = start_run(
        RunPlan(playbook, [host], RunOptions(state_dir=tmp_path / "state")), lambda e: None, connector=connector
    )
    connector.assert_done()
    assert [(r.step, r.status) for r in result.hosts[0].steps] == [
        ("facts", "ok"),
        ("greet", "ok"),
        ("answer", "changed"),
    ]


def test_a_step_before_what_it_needs_is_refused_when_the_playbook_loads(plugin, tmp_path):
    with pytest.raises(
        PlaybookError,
        match=r"step 'answer' needs the greeting \(the greet step\) from a step before "
        r"it.*put greet before it",
    ):
        playbook_from_data({"steps": ["answer", "greet"]}, tmp_path)
    with pytest.raises(PlaybookError, match="put greet before it"):
        playbook_from_data({"steps": ["answer"]}, tmp_path)


def test_the_installer_step_needs_preflight(tmp_path):
    with pytest.raises(PlaybookError, match=r"step 'installer' needs the preflight result .* put preflight before it"):
        playbook_from_data({"steps": ["facts", "installer"]}, tmp_path)


PYDANTIC_PLUGIN = textwrap.dedent('''
    from pydantic import BaseModel, ConfigDict, field_validator
    from agent.runner.registry import changed, step

    class Echo(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        words: str
        times: int = 1

        @field_validator("words")
        @classmethod
        def _said(cls, value):
            if not value.strip():
                raise ValueError("say something")
            return value

    @step("echo", Echo)
    def echo(ctx, params):
        """Echo words on the host."""
        ctx.connection.run(["echo", " ".join([params.words] * params.times)])
        return changed("echoed")
''')


def test_a_published_step_may_take_a_pydantic_model_as_its_parameters(tmp_path, monkeypatch):
    """Steps published before the project's own parameters stopped being pydantic models still load,
    run and refuse bad parameters in the same one-line errors."""
    (tmp_path / "echo_steps.py").write_text(PYDANTIC_PLUGIN)
    info = tmp_path / "echo_steps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ispagent.steps]\necho = echo_steps:echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        playbook = playbook_from_data({"steps": [{"echo": {"words": "hi", "times": "2"}}]}, tmp_path)
        connector = ReplayConnector({"h1": [ExpectedCommand("echo 'hi hi'")]})
        host = Host("h1", Endpoint("198.18.0.2"))
        result = start_run(
            RunPlan(playbook, [host], RunOptions(state_dir=tmp_path / "state")), lambda e: None, connector=connector
        )
        connector.assert_done()
        assert [(r.step, r.status) for r in result.hosts[0].steps] == [("echo", "changed")]
        for params, error in [
            (
                {"words": "hi", "tims": 2},
                r"steps\[0\]\.echo\.tims: unknown parameter of step 'echo' \(did you mean 'times'\?\); known: words, times",
            ),
            ({}, r"steps\[0\]\.echo\.words: required parameter of step 'echo' is missing"),
            ({"words": " "}, r"steps\[0\]\.echo\.words: say something \(got ' '\)"),
            ({"words": "hi", "times": "many"}, r"unable to parse string as an integer \(got 'many'\)"),
        ]:
            with pytest.raises(PlaybookError, match=error):
                playbook_from_data({"steps": [{"echo": params}]}, tmp_path)
    finally:
        sys.modules.pop("echo_steps", None)


def test_a_published_step_with_a_taken_name_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "clash_steps.py").write_text(
        "from agent.runner.registry import step\n@step('shell')\ndef shell(ctx, params):\n    '''Not the shell step.'''\n"
    )
    info = tmp_path / "clash_steps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ispagent.steps]\nshell = clash_steps:shell\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        StepRegistryError, match="step 'shell' is defined twice: in agent.steps.shell and entry point clash_steps:shell"
    ):
        StepRegistry().load()
    sys.modules.pop("clash_steps", None)


def test_each_playbook_gets_a_registry_of_its_own(plugin, tmp_path):
    """No process-wide table: a registry for another package of steps sees only those."""
    assert "greet" in StepRegistry().load()
    assert "greet" not in StepRegistry(entry_point_group="ispagent.other-steps").load()
