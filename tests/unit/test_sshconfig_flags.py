"""A yes/no option of ssh config (IdentitiesOnly) read as OpenSSH reads it: the words it takes, a
comment after them, and a file refused whole for a word it does not take, in whatever block.

OpenSSH's own `ssh -G` is the oracle where it is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import InputError
from agent.inventory.sshconfig import SshConfig

SSH = shutil.which("ssh")


def _config(path: Path, value: str, block: str) -> Path:
    path.write_text(f"Host {block}\n  IdentitiesOnly {value}\nHost web1\n  User someone\n")
    return path


def test_a_word_ssh_does_not_take_refuses_the_file_even_in_a_block_of_another_host(tmp_path: Path) -> None:
    config = _config(tmp_path / "config", "maybe", block="db1")
    with pytest.raises(InputError) as refused:
        SshConfig(config).lookup("web1")  # the block of db1 is never looked at: ssh refuses the file all the same
    assert str(refused.value) == f"{config}: IdentitiesOnly 'maybe': ssh takes yes or no there (and refuses the file)"


@pytest.mark.parametrize(("value", "read"), [("yes # pinned by hand", True), ("=no", False), ('"TRUE"', True)])
def test_a_comment_after_the_word_or_an_equals_sign_before_it_is_read_as_ssh_reads_it(
    tmp_path: Path, value: str, read: bool
) -> None:
    assert SshConfig(_config(tmp_path / "config", value, block="web1")).lookup("web1").identities_only is read


def test_a_second_word_is_refused_as_ssh_refuses_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="IdentitiesOnly 'yes no': ssh takes yes or no there"):
        SshConfig(_config(tmp_path / "config", "yes no", block="web1"))


def _ssh_reads(config: Path, home: Path) -> bool | None:
    """What `ssh -G` says IdentitiesOnly is for web1; None when it refuses the file."""
    done = subprocess.run(
        [SSH, "-G", "-F", str(config), "web1"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
        timeout=30,
    )
    if done.returncode != 0:
        return None
    said = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return said["identitiesonly"] == "yes"


def _ours(config: Path) -> bool | None:
    try:
        return SshConfig(config).lookup("web1").identities_only
    except InputError as error:
        assert "\n" not in str(error)
        return None


_word = st.sampled_from(["yes", "no", "true", "false", "Yes", "NO", "True", "fAlSe", "maybe", "1", "on", "y", ""])
_value = st.builds(
    lambda quoted, word, after: (f'"{word}"' if quoted else word) + after,
    st.booleans(),
    _word,
    st.sampled_from(["", " # a comment", "#x", " no", "  ", " yes"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_value, block=st.sampled_from(["web1", "db1", "*"]))
@pytest.mark.skipif(SSH is None, reason="OpenSSH's client is the oracle")
def test_our_reading_of_identities_only_agrees_with_ssh(value: str, block: str, tmp_path: Path) -> None:
    config = _config(tmp_path / "config", value, block)
    assert _ours(config) == _ssh_reads(config, tmp_path)
