"""The panel's settings from vars: each value becomes exactly one mgrctl argument, or is refused in one line.

Property tests mutate the panel vars of the shipped inventory.example.yaml the way a careless or
hostile user would (quotes, spaces, `=`, shell syntax, line breaks, escapes) and check the argument
lists: one argument per value, and the line the transport sends splits back into exactly them.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PanelSettingsError
from agent.panel.config import mgrctl_calls, read_panel_settings
from agent.transport.quoting import command_line

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"
PANEL = {
    key: value
    for key, value in yaml.safe_load(EXAMPLE.read_text())["groups"]["eu-hosting"]["vars"].items()
    if key.startswith(("panel_", "ihttpd_"))
}
HOSTILE = [
    "'",
    '"',
    "\\",
    " ",
    "=",
    "$(id)",
    "`id`",
    ";",
    "#",
    "&&",
    "\n",
    "\r",
    "\t",
    "\x1b[2J",
    "\x00",
    "\u2028",
    "\u202e",
    "preset=admin",
    "--",
    "-m core",
    "*",
    "~",
]


def test_the_shipped_example_gives_these_calls():
    assert mgrctl_calls(read_panel_settings(PANEL)) == [
        ["preset.edit", "sok=ok", "name=hosting", "disklimit=10000"],
        [
            "user.edit",
            "sok=ok",
            "name=support",
            "passwd=change me: any text on one line",
            "confirm=change me: any text on one line",
            "preset=hosting",
        ],
    ]


@pytest.mark.parametrize(
    "vars, message",
    [
        (
            {"panel_users": [{"name": "a", "password": "xxxx\nyyyy", "preset": "p"}]},
            "var 'panel_users': [0].password: holds the control character U+000A (a line break, tab or escape), "
            "which one mgrctl argument cannot carry; remove it",
        ),
        (
            {"panel_users": [{"name": "a", "password": 7551234, "preset": "p"}]},
            "var 'panel_users': [0].password: is a number to YAML; quote the password so it is read as written",
        ),
        ({"panel_users": [{"name": "a", "password": "pw-12345"}]}, "var 'panel_users': [0]: no preset; add preset:"),
        (
            {"panel_users": [{"name": "a", "pasword": "pw-12345", "preset": "p"}]},
            "var 'panel_users': [0]: unknown key 'pasword'; did you mean 'password'?",
        ),
        (
            {"panel_users": [{"name": "a b", "password": "pw-12345", "preset": "p"}]},
            "var 'panel_users': [0].name: 'a b' is not a panel user name; use letters, digits, '_', '.', '-'",
        ),
        (
            {"panel_presets": [{"name": "p", "settings": {"sok": "no"}}]},
            "var 'panel_presets': [0].settings.sok: ispagent sets this parameter itself; remove it",
        ),
        (
            {"panel_presets": [{"name": "p", "settings": {"ssl": True}}]},
            "var 'panel_presets': [0].settings.ssl: true is not a panel value; quote it as the panel writes it, e.g. 'on' or 'off'",
        ),
        (
            {"panel_params": {"Name With Space": "x"}},
            "var 'panel_params': 'Name With Space' is not a config key; use letters, digits and '_'",
        ),
        (
            {"panel_params": {"Repo": "a\x1b[2Jb"}},
            "var 'panel_params': Repo: holds the control character U+001B (a line break, tab or escape), "
            "which its line of the panel's config file cannot carry; remove it",
        ),
        (
            {"panel_options": ["Disable AutoUpdate\nOption X"]},
            "var 'panel_options': [0]: 'Disable AutoUpdate\\nOption X' is not an option name; use letters, digits and '_'",
        ),
        (
            {"ihttpd_allow": ["10.0.0.0/8\nallow_ip 0.0.0.0/0"]},
            "var 'ihttpd_allow': [0]: '10.0.0.0/8\\nallow_ip 0.0.0.0/0' is not a network; write e.g. 10.0.0.0/8 or 2001:db8::/32",
        ),
        (
            {"ihttpd_listen_ip": "127.1"},
            "var 'ihttpd_listen_ip': '127.1' is not an IP address; 0.0.0.0 listens on every IPv4 address",
        ),
        ({"ihttpd_port": 0}, "var 'ihttpd_port': 0 is not a port number (1-65535)"),
    ],
)
def test_a_value_mgrctl_or_the_config_cannot_take_is_refused_in_one_line(vars, message):
    with pytest.raises(PanelSettingsError) as raised:
        read_panel_settings(vars)
    assert str(raised.value) == message


def _hostile_text(draw, original: str) -> str:
    text = original
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.one_of(st.sampled_from(HOSTILE), st.characters())) + text[at:]
    return text


@st.composite
def mutated_panel(draw) -> dict:
    panel = copy.deepcopy(PANEL)
    user, preset = panel["panel_users"][0], panel["panel_presets"][0]
    field = draw(st.sampled_from(["password", "user_preset", "preset_name", "setting", "param"]))
    if field == "password":
        user["password"] = _hostile_text(draw, user["password"])
    elif field == "user_preset":
        user["preset"] = _hostile_text(draw, user["preset"])
    elif field == "preset_name":
        preset["name"] = _hostile_text(draw, preset["name"])
    elif field == "setting":
        preset["settings"]["disklimit"] = _hostile_text(draw, str(preset["settings"]["disklimit"]))
    else:
        panel["panel_params"]["WebscriptsRepoUrl"] = _hostile_text(draw, panel["panel_params"]["WebscriptsRepoUrl"])
    return panel


@settings(max_examples=400, deadline=None)
@given(panel=mutated_panel())
def test_every_mutated_value_is_exactly_one_argument_or_refused(panel):
    try:
        calls = mgrctl_calls(read_panel_settings(panel))
    except PanelSettingsError as error:
        assert len(str(error).splitlines()) == 1
        assert panel["panel_users"][0]["password"] not in str(error)
        return
    user, preset = panel["panel_users"][0], panel["panel_presets"][0]
    assert calls[0][2] == f"name={preset['name']}" and calls[0][3] == f"disklimit={preset['settings']['disklimit']}"
    assert calls[1][3:] == [f"passwd={user['password']}", f"confirm={user['password']}", f"preset={user['preset']}"]
    for argv in calls:
        assert len(argv) == (4 if argv[0] == "preset.edit" else 6)
        assert shlex.split(command_line(["mgrctl", *argv])) == ["mgrctl", *argv]  # quoted once, split back exactly
        assert all(char.isprintable() or char == " " for word in argv for char in word)
