"""The hostile-input cases of issue 13 through the real command line: each ends in one line and a
non-zero exit (or masked output), never a traceback, a secret, an escape sequence or the whole fleet.

Cases with a data file of their own live beside their kind: tests/data/inventories/bad/ (names,
addresses, ports, pasted keys), tests/data/steps/configure/ (mgrctl arguments), tests/unit/test_billing_csv.py
(money), tests/unit/test_playbook.py (local files), tests/unit/test_partner.py (credentials files).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli

INVENTORY = "hosts:\n  web1: {address: 198.18.0.2}\n  web2: {address: 198.18.0.3}\n"


def _cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def _one_line_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.output
    assert "\x1b" not in result.output
    return lines[0].removeprefix("ispagent: error: ")


LIMIT_FIX = "give host names, group names or globs, or leave the limit out to select every host"


@pytest.mark.parametrize(
    "limit, problem",
    [
        ("", "limit '' names no host or group"),  # --limit "$UNSET" in a cron line
        (" ", "limit ' ' names no host or group"),
        (",", "limit ',' names no host or group"),
        ("web1,", "limit 'web1,' has an empty pattern between commas"),
    ],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_blank_or_empty_limit_is_refused_instead_of_selecting_every_host(
    inventory, tmp_path, command, limit, problem
):
    if command == "check":
        args = ["inventory", "check", "-i", str(inventory), "--ssh-config", "/dev/null", "--limit", limit]
    else:
        playbook = Path(__file__).resolve().parents[2] / "playbooks" / "smoke.yaml"
        args = [
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "--ssh-config",
            "/dev/null",
            "--state-dir",
            str(tmp_path),
            "--limit",
            limit,
        ]
    assert _one_line_error(_cli(*args)) == f"{problem}; {LIMIT_FIX}"
    assert not (tmp_path / "runs").exists()  # refused before any run was journaled or host touched


def test_a_limit_that_matches_nothing_is_refused(inventory):
    result = _cli("inventory", "check", "-i", str(inventory), "--ssh-config", "/dev/null", "--limit", "web9")
    assert (
        _one_line_error(result) == f"limit pattern 'web9' matches no host or group in {inventory}; did you mean 'web2'?"
    )


def test_a_url_password_in_an_option_is_masked_in_the_error():
    result = _cli(
        "licenses",
        "list",
        "--api-url",
        "http://reseller:Api-Pw-123@api.example.com/billmgr",
        env={"ISPAGENT_PARTNER_AUTHINFO": ""},
    )
    assert _one_line_error(result) == (
        "partner_api_url: 'http://reseller:***@api.example.com/billmgr' is plain http to a public host; use https"
    )


def test_a_url_password_in_the_inventory_is_masked_in_plans_error(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "defaults:\n  vars:\n    partner_api_url: ftp://reseller:Api-Pw-123@api.example.com/billmgr\n" + INVENTORY
    )
    assert _one_line_error(_cli("plan", "-i", str(path))) == (
        f"{path}:3: defaults.vars.partner_api_url: 'ftp://reseller:***@api.example.com/billmgr' is not an http(s) URL"
    )


@pytest.mark.parametrize("url", ["https://[::1/billmgr", "https://api.example.com]/billmgr"])
def test_an_unbalanced_bracket_in_the_api_url_is_one_line_not_a_traceback(tmp_path, url):
    """urlsplit raises ValueError ("Invalid IPv6 URL") on it; found by the vagrant vars mutation test."""
    path = tmp_path / "inventory.yaml"
    path.write_text(f"defaults:\n  vars:\n    partner_api_url: '{url}'\n" + INVENTORY)
    assert _one_line_error(_cli("plan", "-i", str(path))) == (
        f"{path}:3: defaults.vars.partner_api_url: '{url}' is not an http(s) URL"
    )
    result = _cli("licenses", "list", "--api-url", url, env={"ISPAGENT_PARTNER_AUTHINFO": "u:p"})
    assert _one_line_error(result) == f"partner_api_url: '{url}' is not an http(s) URL"


def test_an_unbalanced_bracket_in_an_api_url_holding_a_password_masks_it():
    result = _cli("licenses", "list", "--api-url", "https://reseller:Api-Pw-123@[::1/billmgr", env={})
    assert _one_line_error(result) == "partner_api_url: 'https://reseller:***@[::1/billmgr' is not an http(s) URL"
    assert "Api-Pw-123" not in result.stdout + result.stderr


def test_an_error_holding_a_line_break_and_an_escape_sequence_stays_one_escaped_line(tmp_path):
    name = tmp_path / "in\nventory\x1b[2J.yaml"
    assert _one_line_error(_cli("inventory", "check", "-i", str(name))) == (
        f"{tmp_path}/in\\nventory\\x1b[2J.yaml: no such inventory file; pass the path of an inventory YAML with -i"
    )


def test_an_escape_sequence_in_a_csv_cell_does_not_reach_the_terminal(tmp_path):
    csv = tmp_path / "billing.csv"
    csv.write_text("date,license_id,edition,period,kind,price\n2026-01-05,1,lite,monthly,\x1b]0;pwned\x07activation,\n")
    result = _cli("ledger", "import", str(csv), "--ledger", str(tmp_path / "l.sqlite"), "--today", "2026-11-26")
    assert _one_line_error(result) == (
        f"{csv}:2: kind '\\x1b]0;pwned\\x07activation' is not one of activation, renewal, deactivation, payment; "
        "nothing was imported"
    )


def test_today_is_read_only_as_yyyy_mm_dd(tmp_path):
    result = _cli("turnover", "--ledger", str(tmp_path / "l.sqlite"), "--today", "20261126")
    assert _one_line_error(result) == "--today '20261126': write YYYY-MM-DD"


def test_a_small_playbook_of_nested_aliases_is_refused_at_once_without_expanding_them(inventory, tmp_path):
    # 398 bytes that expand to 9^9 (387 million) values: it took 111 s and 3 GB before.
    lines = ["name: bomb", "vars:", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    playbook = tmp_path / "bomb.yaml"
    playbook.write_text("\n".join(lines + ["steps: [facts]"]) + "\n")
    assert len(playbook.read_bytes()) < 520
    started, peak_before = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = _cli("run", str(playbook), "-i", str(inventory), "--dry-run", "--state-dir", str(tmp_path))
    assert time.monotonic() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200_000  # KiB: no expansion
    assert _one_line_error(result) == (
        f"{playbook}:8: aliases expand to more than 100000 values; write the values out, or alias fewer or smaller ones"
    )
