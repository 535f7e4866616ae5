"""Inventory vars -> the exact install.sh command line, and the vars that must stop a host (data-driven).

What install.sh's failures mean: tests/unit/test_installer_messages.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.errors import PanelSettingsError
from agent.installer.command import installer_command
from agent.installer.settings import read_install_settings

DATA = Path(__file__).parents[1] / "data" / "installer"
COMMANDS = yaml.safe_load((DATA / "command_cases.yaml").read_text())


@pytest.mark.parametrize("case", [c for c in COMMANDS if "argv" in c], ids=lambda c: c["name"])
def test_vars_give_the_exact_installer_command_line(case):
    settings = read_install_settings(case["vars"])
    command = installer_command(settings, case["os_family"], case.get("key"))
    assert list(command.argv) == case["argv"]
    assert list(command.notes) == case.get("notes", [])


@pytest.mark.parametrize("case", [c for c in COMMANDS if "error" in c], ids=lambda c: c["name"])
def test_bad_vars_stop_the_host_naming_the_var(case):
    with pytest.raises(PanelSettingsError) as error:
        read_install_settings(case["vars"])
    assert str(error.value).startswith(case["error"])
