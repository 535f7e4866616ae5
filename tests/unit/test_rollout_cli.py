"""`run --rollout`, `rollout status` and `rollouts` from the command line: refusals in one line, status as the ledger has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pgkit import pg_schema

from agent.cli.main import cli
from agent.ledger.rollouts import NodeInfo, RolloutBoard

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "playbooks" / "smoke.yaml"


def _inventory(tmp_path: Path, url: str | None) -> Path:
    path = tmp_path / "inventory.yaml"
    vars = f"  vars:\n    ledger_url: '{url}'\n" if url else "  vars: {}\n"
    path.write_text(f"defaults:\n{vars}hosts:\n  h1: {{address: 198.18.0.2}}\n  h2: {{address: 198.18.0.3}}\n")
    return path


def _cli(*args: str, state: Path):
    return CliRunner().invoke(cli, [*args], env={"ISPAGENT_STATE_DIR": str(state)})


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.output
    return lines[0]


@pytest.fixture
def url():
    with pg_schema() as url:
        yield url


def test_a_rollout_on_a_sqlite_ledger_is_refused_in_one_line_and_makes_no_ledger(tmp_path):
    line = _one_line_error(
        _cli("run", str(SMOKE), "-i", str(_inventory(tmp_path, None)), "--rollout", "r1", state=tmp_path / "state")
    )
    assert "PostgreSQL ledger: set ledger_url" in line
    assert not (tmp_path / "state" / "ledger.sqlite").exists()


def test_rollout_options_without_a_rollout_and_resume_with_one_are_refused(tmp_path):
    inventory = str(_inventory(tmp_path, None))
    assert "options of --rollout" in _one_line_error(_cli("run", str(SMOKE), "-i", inventory, "--wait", state=tmp_path))
    assert "options of --rollout" in _one_line_error(
        _cli("run", str(SMOKE), "-i", inventory, "--lease", "5", state=tmp_path)
    )
    line = _one_line_error(_cli("run", "--resume", "20260101T000000-abcdef", "--rollout", "r1", state=tmp_path))
    assert "joined again with PLAYBOOK -i INVENTORY --rollout NAME" in line


def test_joining_a_rollout_with_another_playbook_is_refused_in_one_line(tmp_path, url):
    board = RolloutBoard(url)
    board.start_or_join("r1", "/elsewhere/site.yaml", "0" * 64, ["h1", "h2"], NodeInfo("a", "m", 1, 60))
    board.close()
    line = _one_line_error(
        _cli("run", str(SMOKE), "-i", str(_inventory(tmp_path, url)), "--rollout", "r1", state=tmp_path)
    )
    assert "rollout r1 runs /elsewhere/site.yaml" in line and "ispagent-test-pw" not in line


def test_status_and_list_show_hosts_nodes_and_completion(tmp_path, url):
    board = RolloutBoard(url)
    a = NodeInfo("site1:100:ab12", "site1", 100, 60)
    board.start_or_join("r1", str(SMOKE), "0" * 64, ["h1", "h2"], a)
    claim = board.claim("r1", a, ["h1"])
    board.finish("r1", "h1", a, claim.token, "failed", "preflight", "preflight: not enough memory")
    board.claim("r1", a, ["h2"])
    board.close()
    inventory = str(_inventory(tmp_path, url))

    shown = _cli("rollout", "status", "r1", "-i", inventory, "--json", state=tmp_path)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["complete"] is False and data["counts"]["failed"] == 1 and data["counts"]["claimed"] == 1
    assert data["hosts"][0]["error"] == "preflight: not enough memory"
    assert data["nodes"][0]["hosts"] == {"claimed": 1, "failed": 1}

    text = _cli("rollout", "status", "r1", "-i", inventory, state=tmp_path).output
    assert "not complete: 1 claimed, 1 failed" in text and "  preflight: not enough memory" in text
    assert "site1:100:ab12" in text and "until " in text

    listed = _cli("rollouts", "-i", inventory, state=tmp_path).output
    assert "r1" in listed and "in progress" in listed and "smoke.yaml" in listed
    assert "no rollout r2" in _one_line_error(_cli("rollout", "status", "r2", "-i", inventory, state=tmp_path))
