"""The `lab` fixture without root: skipped on a workstation, a failure under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parents[1] / "conftest.py").read_text()
NEEDS_LAB = """
import os

os.geteuid = lambda: 1000  # as an unprivileged user, in this subprocess only


def test_on_the_lab(lab):
    pass
"""


@pytest.mark.parametrize("ci, outcome", [(None, {"skipped": 1}), ("true", {"errors": 1})])
def test_lab_tests_without_root_are_skipped_except_in_ci(pytester, monkeypatch, ci, outcome):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # the conftest imports the test harness
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(NEEDS_LAB)
    result = pytester.runpytest_subprocess("-rsE")
    result.assert_outcomes(**outcome)
    if ci:
        result.stdout.fnmatch_lines(
            ["*CI=true: the lab cannot start, so its tests would be skipped: the lab needs root*"]
        )
