"""The lab's mgrctl: sbin/mgrctl (sh) answers `-m ispmgr license.info` with shell builtins and hands
every other call, and every license file it cannot be sure of, to the Python implementation
(libexec/mgrctl.py). Whatever the file and the arguments, it prints and exits as the Python does."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_host_probes import EMULATED_MGR5, installed_panel_setup, run_counted

from agent.lab.mirror import panel_tarball

MGRCTL = EMULATED_MGR5 / "sbin" / "mgrctl"
PYTHON_MGRCTL = ["/usr/bin/python3", "-IS", str(EMULATED_MGR5 / "libexec" / "mgrctl.py")]
LICENSE_INFO = ["-m", "ispmgr", "license.info"]
LICENSE_KEYS = ["licid", "panel_name", "expire", "ip"]
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Characters a hand-rolled JSON reader gets wrong: quotes, escapes, separators, spaces, past ASCII.
TRICKY = st.sampled_from(list('"\\,{}[]:. \t\n\r\x00\x7f-0123456789eE') + ["é", "\u2028", "😀", "\ufeff"])
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
TEXT = st.text(ASCII | st.characters(exclude_categories=["Cs"]) | TRICKY, max_size=12)
KEY = st.sampled_from(LICENSE_KEYS) | TEXT
SCALAR = (
    TEXT
    | st.integers()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
)
VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=4
)


@st.composite
def license_texts(draw: st.DrawFn) -> str:
    """A license file as json.dump writes one (any dumps options), or an object with a repeated key."""
    pairs = draw(st.lists(st.tuples(KEY, VALUE), max_size=7))
    if draw(st.booleans()):
        options = draw(
            st.fixed_dictionaries(
                {
                    "ensure_ascii": st.booleans(),
                    "indent": st.none() | st.integers(0, 2),
                    "separators": st.none() | st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : ")]),
                    "sort_keys": st.booleans(),
                }
            )
        )
        text = json.dumps(dict(pairs), **options)
    else:  # duplicate keys stay
        text = "{" + ", ".join(f"{json.dumps(key)}: {json.dumps(value)}" for key, value in pairs) + "}"
    around = st.sampled_from(["", " ", "\n", "\r\n", "\n\n", "\t", "\x00", "x", "}", ",", "\n{}"])
    return draw(around) + text + draw(around)


JUNK = st.sampled_from(["", "\n", "{", "}", "{}", "[]", '"licid"', "null", "42", '{"licid": "1"', '{"licid" "1"}'])
LICENSE_FILES = license_texts().map(str.encode) | st.binary(max_size=40) | JUNK.map(str.encode) | st.none()


def answer(command: list[str], root: Path, argv: list[str]) -> tuple[bytes, int]:
    env = {"ISPMGR_EMULATOR_ROOT": str(root), "PATH": os.environ["PATH"]}
    done = subprocess.run([*command, *argv], capture_output=True, env=env, timeout=30)
    return done.stdout, done.returncode


def write_license(root: Path, content: bytes | None) -> None:
    lic = root / "usr" / "local" / "mgr5" / "etc" / "ispmgr.lic"
    lic.parent.mkdir(parents=True, exist_ok=True)
    lic.unlink(missing_ok=True)
    if content is not None:
        lic.write_bytes(content)


@EXAMPLES
@given(content=LICENSE_FILES)
def test_license_info_prints_what_the_python_mgrctl_prints_for_any_license_file(tmp_path: Path, content):
    write_license(tmp_path, content)
    assert answer([str(MGRCTL)], tmp_path, LICENSE_INFO) == answer(PYTHON_MGRCTL, tmp_path, LICENSE_INFO)


ARGV_WORDS = st.sampled_from(["-m", "-o", "-R", "ispmgr", "core", "license.info", "user", "preset", "x=1", "", "-"])


@EXAMPLES
@given(argv=st.lists(ARGV_WORDS, max_size=5))
def test_any_arguments_get_what_the_python_mgrctl_answers(tmp_path: Path, argv):
    """-R and exit restart a panel this tree lacks (both fail alike); user/preset calls touch only the tree."""
    write_license(tmp_path, json.dumps({"licid": "4000013", "panel_name": "ISPmanager Lite"}).encode())
    assert answer([str(MGRCTL)], tmp_path, argv) == answer(PYTHON_MGRCTL, tmp_path, argv)


# What licctl fetch and the lab's profiles write: json.dump of the license server's answer, strings and
# integers; json.dump escapes quotes, backslashes, controls and non-ASCII, which go to Python.
PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=20)
LICCTL_LICENSES = st.dictionaries(
    st.sampled_from([*LICENSE_KEYS, "expire_date", "edition"]) | PLAIN,
    PLAIN | st.integers(min_value=-(10**17), max_value=10**17),
    max_size=6,
)


@EXAMPLES
@given(lic=LICCTL_LICENSES, newline=st.booleans())
def test_license_info_of_a_file_licctl_writes_needs_no_python(tmp_path: Path, lic, newline):
    """The sh mgrctl alone, without the Python implementation beside it, answers as the Python does."""
    alone = tmp_path / "alone" / "sbin" / "mgrctl"
    if not alone.exists():
        alone.parent.mkdir(parents=True)
        shutil.copy2(MGRCTL, alone)
    write_license(tmp_path, (json.dumps(lic) + "\n" * newline).encode())
    python_answer = answer(PYTHON_MGRCTL, tmp_path, LICENSE_INFO)
    assert python_answer[1] == 0
    assert answer([str(alone)], tmp_path, LICENSE_INFO) == python_answer


def test_license_info_is_one_process(tmp_path: Path):
    """At fleet scale the processes an audit starts are its cost: the real mgrctl is one, so is this."""
    setup = installed_panel_setup(tmp_path)
    processes, out = run_counted("/usr/local/mgr5/sbin/mgrctl -m ispmgr license.info", tmp_path / "out", setup)
    assert "licid=4000013\npanel_name=ISPmanager Lite\nexpire=\nip=\n" in out
    assert processes == 2  # the counter's shell and mgrctl


def test_the_mirror_ships_the_sh_mgrctl_and_its_python_implementation_executable():
    with tarfile.open(fileobj=io.BytesIO(panel_tarball())) as archive:
        modes = {member.name: member.mode for member in archive.getmembers()}
    assert modes["sbin/mgrctl"] & 0o755 == 0o755
    assert modes["libexec/mgrctl.py"] & 0o755 == 0o755
