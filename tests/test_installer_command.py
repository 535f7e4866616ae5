"""Inventory vars -> the exact install.sh command line, and the vars that must stop a host (data-driven)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.errors import PanelSettingsError
from agent.installer.command import installer_command
from agent.installer.messages import classify_output, failure_line
from agent.installer.settings import read_install_settings

DATA = Path(__file__).parent / "data" / "installer"
COMMANDS = yaml.safe_load((DATA / "command_cases.yaml").read_text())
MESSAGES = yaml.safe_load((DATA / "messages.yaml").read_text())


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


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c["output"][:50] or f"exit {c['exit']}")
def test_each_real_installer_message_gets_its_class(case):
    output = f"Installing coremanager\n{case['output']}\n"
    assert classify_output(output, case["exit"]).name == case["class"]


def test_failure_line_is_the_known_message_not_the_last_line():
    output = "Installing coremanager\nERROR: Invalid activation key\nSee https://docs.ispmanager.com/x\n"
    assert failure_line(output) == "ERROR: Invalid activation key"


def test_repository_failures_say_retry_later():
    assert classify_output("Problems with repository. Please try again in an hour", 1).retry_later
    assert not classify_output("Invalid activation key", 1).retry_later


def test_eu_variant_and_repository_beside_the_script():
    settings = read_install_settings({"installer_eu": True})
    assert settings.script_url == "https://download.ispmanager.com/install.eu.sh"
    mirror = read_install_settings({"installer_url": "http://198.18.0.1:8080/install.sh"})
    assert mirror.repository_url == "http://198.18.0.1:8080/repo/"
