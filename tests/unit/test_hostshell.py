"""The host shell's script for one command, read by a real dash and bash here, and its output split back."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.transport.hostshell import _MARKER_TAIL, command_output, command_script, printf_format, with_data_on_stdin
from agent.transport.quoting import command_line

TOKEN = "0123456789abcdef0123456789abcdef"
SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]


def _through(shell: str, *scripts: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr of `shell -s` reading `scripts` one after another, as the host's shell does."""
    done = subprocess.run([shell, "-s"], input=b"".join(scripts), capture_output=True, timeout=30)
    return done.stdout, done.stderr


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3000))
def test_any_bytes_reach_the_commands_stdin_exactly(shell, data):
    out, err = _through(shell, command_script(TOKEN, "cat", data))
    assert command_output(TOKEN, out, err) == (0, data, b"")


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3000))
def test_any_bytes_given_as_data_come_back_exactly_from_the_function_and_stdin_is_empty(shell, data):
    out, err = _through(shell, command_script(TOKEN, "ispagent_data; cat", None, data))
    assert command_output(TOKEN, out, err) == (0, data, b"")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_data_function_ends_with_its_command(shell):
    out, err = _through(
        shell, command_script(TOKEN, "ispagent_data", None, b"x"), command_script(TOKEN, "ispagent_data", None)
    )
    assert command_output(TOKEN, out, err) == (0, b"x", b"")
    rest_err = err[err.index(b"\n" + TOKEN.encode() + b"\n") + len(TOKEN) + 2 :]
    assert b"not found" in rest_err


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=3000))
def test_data_on_stdin_reaches_the_same_function(shell, data):
    """Where the host shell's function cannot reach (a session of its own, sudo's shell)."""
    done = subprocess.run([shell, "-c", with_data_on_stdin("ispagent_data")], input=data, capture_output=True)
    assert (done.returncode, done.stdout) == (0, data)


def test_bytes_go_on_stdin_or_as_data_not_both():
    with pytest.raises(ValueError, match="not both"):
        command_script(TOKEN, "cat", b"a", b"b")


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=40, deadline=None)
@given(
    words=st.lists(st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=40), min_size=1, max_size=4),
    status=st.integers(0, 255),
)
def test_any_argv_comes_back_with_its_exit_status_and_the_next_command_runs(shell, words, status):
    line = command_line(["printf", "%s|", *words]) + f"; exit {status}"
    out, err = _through(shell, command_script(TOKEN, line, None), command_script(TOKEN, "echo next", None))
    first = command_output(TOKEN, out, err)
    assert first == (status, "".join(f"{word}|" for word in words).encode(), b"")
    rest_out = out[out.index(b"\n" + TOKEN.encode() + b" ") :].split(b"\n", 2)[2]
    rest_err = err[err.index(b"\n" + TOKEN.encode() + b"\n") + len(TOKEN) + 2 :]
    assert command_output(TOKEN, rest_out, rest_err) == (0, b"next\n", b"")


def test_output_is_not_complete_before_both_markers():
    out = b"partial\n" + b"\n" + TOKEN.encode() + b" 0\n"
    assert command_output(TOKEN, out, b"still writing") is None
    assert command_output(TOKEN, out[:-1], b"\n" + TOKEN.encode() + b"\n") is None
    assert command_output(TOKEN, out, b"e\n" + TOKEN.encode() + b"\n") == (0, b"partial\n", b"e")


def test_markers_split_across_reads_are_found_when_searching_on_from_where_the_last_search_ended():
    """What _collect does: after each read it searches on from _MARKER_TAIL bytes before the end of what it had."""
    out = b"x" * 1000 + b"\n" + TOKEN.encode() + b" 127\n"
    err = b"e" * 500 + b"\n" + TOKEN.encode() + b"\n"
    for cut in range(1000, len(out)):
        for err_cut in (490, len(err) - 1):
            searched = (max(0, cut - _MARKER_TAIL), max(0, err_cut - _MARKER_TAIL))
            assert command_output(TOKEN, out[:cut], err[:err_cut], searched) is None
            assert command_output(TOKEN, out, err, searched) == (127, b"x" * 1000, b"e" * 500)


def test_the_format_is_printable_ascii_without_quote_percent_or_backslash_but_as_escapes():
    fmt = printf_format(bytes(range(256)))
    assert all(32 <= byte < 127 or byte == 10 for byte in fmt)
    assert b"'" not in fmt and b"%" not in fmt.replace(b"\\045", b"")
    assert fmt.count(b"\\") == 256 - (95 - 3) - 1  # all but printable ASCII (less ' % \) and newline
