"""`~user` paths a user writes: expanded like a shell, or one line naming the user this machine lacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import InputError
from agent.userpath import expand_home

REPO = Path(__file__).resolve().parents[2]


def test_home_and_an_existing_user_expand_like_a_shell():
    assert expand_home("~/x") == Path.home() / "x"
    assert expand_home("~root/x") == Path(os.path.expanduser("~root")) / "x"
    assert expand_home("relative/x") == Path("relative/x")


@pytest.mark.parametrize("written, user", [("~:/.ssh/known_hosts", "':'"), ("~no-such-user-x/key", "'no-such-user-x'")])
def test_an_unknown_user_is_an_input_error_naming_it(written, user):
    with pytest.raises(InputError) as raised:
        expand_home(written)
    assert f"this machine has no user {user}; write the path in full" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_typo_in_the_inventorys_known_hosts_is_one_line_with_its_line_number(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("ssh:\n  known_hosts: ~:/.ssh/known_hosts\nhosts:\n  h1: {address: 192.0.2.1}\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "inventory", "check", "-i", str(inventory)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"ispagent: error: {inventory}:2: ssh.known_hosts: '~:/.ssh/known_hosts': cannot expand '~': this machine "
        "has no user ':'; write the path in full; '~/' is your home, '~name/' another user's"
    ]


def test_a_state_dir_under_an_unknown_user_is_one_line(tmp_path):
    env = {**os.environ, "ISPAGENT_STATE_DIR": "~no-such-user-x/state"}
    result = subprocess.run([sys.executable, "-m", "agent", "runs"], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "no user 'no-such-user-x'" in result.stderr
