"""program.yaml: the shipped defaults load, and every mistake is one line with file:line, key and fix."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.economics.program import DEFAULT_PROGRAM, ProgramError, load_program


def test_shipped_program_has_placeholder_prices_and_the_documented_defaults():
    program = load_program()
    assert program.source == str(DEFAULT_PROGRAM) and program.placeholder_prices
    assert program.tiers[0].discount == Decimal(10)  # §4: from 10 %
    assert (program.minimum_turnover, program.months_under_to_lose, program.marketing_support_from) == (100, 6, 50)
    assert (program.turnover_basis, program.lowering, program.raise_applies_to, program.renewals) == (
        "list",
        "qualifying",
        "next_charge",
        "implied",
    )
    assert {edition for edition, _ in program.prices} == {"lite", "pro", "host", "business"}


GOOD = """list_prices:
  lite: {monthly: 10, annual: 100}
  pro: {monthly: 20, annual: 200}
  host: {monthly: 40, annual: 400}
  business: {monthly: 80, annual: 800}
tiers:
  - {min_turnover: 100, discount: 10}
  - {min_turnover: 300, discount: 15}
"""


@pytest.mark.parametrize(
    "text, words",
    [
        (
            GOOD.replace("{min_turnover: 300, discount: 15}", "{min_turnover: 50, discount: 15}"),
            ":8: tiers[1]: tiers must rise; list them by growing min_turnover",
        ),
        (
            GOOD.replace("pro: {monthly: 20", "pro: {monthly: twenty"),
            ":3: list_prices.pro.monthly: 'twenty' is not a number; write a number",
        ),
        (
            GOOD.replace("discount: 15", "discount: 150"),
            ":8: tiers[1].discount: 150 is out of range; write a number between 0 and 100",
        ),
        (GOOD + "minimum_turnoever: 100\n", ":9: minimum_turnoever: unknown key; did you mean 'minimum_turnover'?"),
        (
            GOOD + "choices:\n  renewals: sometimes\n",
            ":10: choices.renewals: 'sometimes' is not a choice; write one of implied, recorded",
        ),
        (GOOD.replace("  business: {monthly: 80, annual: 800}\n", ""), ":1: list_prices: 'business' is missing"),
        (GOOD + "invoices: {due_days: -3}\n", ":9: invoices.due_days: '-3' is not a whole number of at least 0"),
        ("tiers: [\n", ":2: YAML syntax error"),
    ],
)
def test_program_errors_name_file_line_key_and_fix(tmp_path, text, words):
    path = tmp_path / "program.yaml"
    path.write_text(text)
    with pytest.raises(ProgramError) as error:
        load_program(path)
    assert str(error.value).startswith(str(path)) and words in str(error.value) and "\n" not in str(error.value)


def test_a_bad_program_file_is_one_line_and_exit_2_from_the_cli(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(GOOD.replace("discount: 15", "discount: lots"))
    result = CliRunner().invoke(cli, ["turnover", "--program", str(path), "--ledger", str(tmp_path / "l.sqlite")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert f"{path}:8: tiers[1].discount: 'lots' is not a number" in result.output


def test_merge_keys_work_in_the_price_list(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(
        GOOD.replace("pro: {monthly: 20, annual: 200}", "pro: {<<: *lite, monthly: 20}").replace(
            "lite: {monthly: 10", "lite: &lite {monthly: 10"
        )
    )
    program = load_program(path)
    assert (program.price("pro", "monthly"), program.price("pro", "annual")) == (Decimal(20), Decimal(100))
