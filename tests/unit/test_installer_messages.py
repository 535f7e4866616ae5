"""install.sh's output -> failure class, advice and the explaining line, from the real script's messages (data-driven)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.installer import messages
from agent.installer.messages import classify_output, failure_line

CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "installer" / "messages.yaml").read_text())
CLASSES = [value for value in vars(messages).values() if isinstance(value, messages.FailureClass)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["facts"][:60])
def test_each_real_installer_message_gets_its_class_and_line(case):
    output = f"Installing on DEBIAN bookworm\n{case['output']}\n"
    failure = classify_output(output, case["exit"])
    assert failure.name == case["class"]
    expected = case.get("line", case["output"])
    assert failure_line(case["output"]) == expected


def test_every_message_the_classifier_knows_has_a_case_from_the_facts():
    outputs = "\n".join(case["output"] for case in CASES)
    missing = [text for text, _ in messages._MESSAGES if text not in outputs]
    assert missing == []


def test_each_sign_of_the_internal_repository_has_a_case_from_the_facts():
    """The internal host in apt's lines, and the repository stage without a mirror line: each alone
    makes a run internal_repository; the stage's own `Checking ... Not found` with a mirror line does not."""
    internal = [case["output"] for case in CASES if case["class"] == "internal_repository"]
    assert any(messages.INTERNAL_REPOSITORY_HOST in output for output in internal)
    assert any(
        messages.INTERNAL_REPOSITORY_HOST not in output and messages.REPOSITORY_STAGE in output for output in internal
    )
    unreachable = [
        case
        for case in CASES
        if case["class"] == "repository_unreachable" and messages.REPOSITORY_STAGE in case["output"]
    ]
    assert len(unreachable) >= 4  # stable, beta, intbeta, an EOL host answered y: the stage on every real run


def test_the_repository_stage_without_its_mirror_line_is_the_internal_repository_only_once_reached():
    stage = "Checking ispmanager-base repo... Not found\nispmanager-lite-common was not found in repos for x ( y )"
    assert classify_output(stage, 1).name == "internal_repository"
    assert classify_output("Using mirrors.download.ispmanager.com\n" + stage, 1).name == "repository_unreachable"
    assert (
        classify_output("ispmanager-lite-common was not found in repos for x ( y )", 1).name == "repository_unreachable"
    )


def test_every_class_has_advice_and_a_distinct_name():
    names = [failure.name for failure in CLASSES]
    assert len(names) == len(set(names))
    for failure in CLASSES:
        assert len(failure.advice) > 20, failure.name
    assert {case["class"] for case in CASES} <= set(names)


def test_only_the_repositories_say_retry_later():
    assert {failure.name for failure in CLASSES if failure.retry_later} == {"repository", "repository_unreachable"}


def test_colours_and_a_foreign_prefix_do_not_hide_a_message():
    assert (
        failure_line("Installing coremanager\n\x1b[1;31mInvalid activation key\x1b[0m\nSee https://x\n")
        == "Invalid activation key"
    )
    assert classify_output("ERROR: Invalid activation key", 1).name == "license"
