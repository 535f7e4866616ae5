"""harness/fuzz.py at CI size: mutated shipped examples through the real commands, each ending in exit 0
or 2 with one short error line, no traceback, no partial write (see the harness's doc for the rules).

Hypothesis draws the mutations (derandomized: the same cases on every run); the harness's one
mutator and judge are used, so the suite keeps the property the harness measures at volume.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import fuzz, mutations

CASES = {"inventory": 200, "playbook": 60, "program": 80, "billing": 120, "vagrant": 200}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        import agent.transport.ssh as ssh

        patch.setattr(ssh, "RETRY_BASE_DELAY", 0)  # a closed loopback port: retrying it only waits
        yield fuzz.Workspace(tmp_path_factory.mktemp("fuzz"))


def _check(kind: str, workspace, random) -> None:
    data = mutations.mutate(random, kind)
    result = fuzz.run_case(kind, data, workspace)
    assert not result.problems, (data[:2000], [(c.args, c.exit_code, c.problems, c.error) for c in result.commands])


def _property(kind: str):
    return settings(
        max_examples=CASES[kind],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@_property("inventory")
@given(random=st.randoms(use_true_random=False))
def test_a_mutated_inventory_is_checked_or_refused_in_one_line(workspace, random) -> None:
    _check("inventory", workspace, random)


@_property("playbook")
@given(random=st.randoms(use_true_random=False))
def test_a_mutated_playbook_dry_runs_or_is_refused_in_one_line(workspace, random) -> None:
    _check("playbook", workspace, random)


@_property("program")
@given(random=st.randoms(use_true_random=False))
def test_a_mutated_program_gives_turnover_and_forecast_or_is_refused_in_one_line(workspace, random) -> None:
    _check("program", workspace, random)


@_property("billing")
@given(random=st.randoms(use_true_random=False))
def test_a_mutated_billing_csv_imports_whole_or_leaves_the_ledger_unchanged(workspace, random) -> None:
    _check("billing", workspace, random)


@_property("vagrant")
@given(random=st.randoms(use_true_random=False))
def test_mutated_vagrant_output_makes_a_checked_inventory_or_is_refused_writing_nothing(workspace, random) -> None:
    _check("vagrant", workspace, random)


def test_the_unmutated_examples_pass_every_command(workspace) -> None:
    # What the mutations start from works: inventory check 0 (run --dry-run: 1, its host unreachable),
    # each playbook reaches its host (1: unreachable), turnover and forecast 0, the import 0,
    # from-vagrant 0 and the check of what it wrote 0.
    expected = {"inventory": [0, 1], "playbook": [1], "program": [0, 0], "billing": [0], "vagrant": [0, 0]}
    for kind in fuzz.KINDS:
        for data in fuzz.originals(kind):
            result = fuzz.run_case(kind, data, workspace, with_run=kind == "inventory")
            assert not result.problems, (kind, [(c.args, c.exit_code, c.problems, c.error) for c in result.commands])
            assert [command.exit_code for command in result.commands] == expected[kind], kind
