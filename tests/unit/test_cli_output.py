"""The command line prints through one function: secrets masked, control characters escaped, errors one line."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli
from agent.cli.output import echo, error_line
from agent.errors import InputError
from agent.secrets import forget_secrets

CLI = Path(__file__).resolve().parents[2] / "agent" / "cli"
PRINTERS = {("click", "echo"), ("click", "secho"), ("sys.stdout", "write"), ("sys.stderr", "write")}


def test_only_the_output_module_prints():
    offenders = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                function = node.func
                if isinstance(function, ast.Name) and function.id == "print":
                    offenders.append(f"{path.name}:{node.lineno}: print")
                if isinstance(function, ast.Attribute) and (ast.unparse(function.value), function.attr) in PRINTERS:
                    offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(function)}")
    assert offenders == []


def test_an_error_is_one_masked_line_with_control_characters_escaped():
    error = InputError("web1\n: bad \x1b[2Jvalue at https://u:pw-1234@h/x")
    assert error_line(error) == "ispagent: error: web1\\n: bad \\x1b[2Jvalue at https://u:***@h/x"


def test_output_keeps_lines_and_escapes_terminal_codes(capsys):
    echo("a\tb\nc\x1b]0;title\x07 https://u:pw-1234@h/x")
    assert capsys.readouterr().out == "a\tb\nc\\x1b]0;title\\x07 https://u:***@h/x\n"


def test_a_click_usage_error_does_not_echo_a_secret_or_a_control_character():
    result = CliRunner().invoke(cli, ["run", "--forks", "https://u:pw-1234@h/\x1b[2J"])
    assert result.exit_code == 2
    assert "pw-1234" not in result.output and "\x1b" not in result.output


def test_a_click_usage_error_cuts_a_huge_argument_it_quotes():
    # Found by harness.inputs (schedule case 180 of seed 20): click quoted a 5000-character word whole.
    result = CliRunner().invoke(cli, ["schedule", "add", "playbook.yaml", "-i", "fleet.yaml", "/srv/" + "x" * 5000])
    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: Got unexpected extra argument") and len(error) <= 310 and error.endswith("…")


def test_inventory_check_json_masks_url_passwords_and_keys(tmp_path):
    forget_secrets()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "defaults:\n  vars:\n"
        "    partner_api_url: https://partner:PartnerPw-77@198.18.0.1:8443/billmgr\n"
        "    ledger_url: postgresql+psycopg://ledger:LedgerPw-88@127.0.0.1/ledger\n"
        "hosts:\n  web1:\n    address: 198.18.0.2\n    vars: {activation_key: KEY-0123-abcd}\n"
    )
    result = CliRunner().invoke(
        cli, ["inventory", "check", "-i", str(inventory), "--ssh-config", "/dev/null", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hosts"][0]["vars"] == {
        "partner_api_url": "https://partner:***@198.18.0.1:8443/billmgr",
        "ledger_url": "postgresql+psycopg://ledger:***@127.0.0.1/ledger",
        "activation_key": "***",
    }
