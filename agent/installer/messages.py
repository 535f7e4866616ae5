"""What an install.sh failure means, read from the real script's messages (facts 1.9, 2.3, 7)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureClass:
    name: str
    advice: str  # what the operator does next
    retry_later: bool = False


REPOSITORY = FailureClass("repository", "the vendor's repository failed: run again later", retry_later=True)
LICENSE = FailureClass("license", "the license could not be activated: check the license for this IP or the key")
UNSUPPORTED_OS = FailureClass("unsupported_os", "this OS cannot take ISPmanager 6: reinstall the server")
ALREADY_INSTALLED = FailureClass("already_installed", "a panel is installed: upgrade with pkgupgrade.sh, do not reinstall")
HARDWARE = FailureClass("hardware", "the server is too small: add RAM or use sqlite")
HOSTNAME = FailureClass("hostname", "set a fully qualified hostname, or ignore_hostname: true")
SELINUX = FailureClass("selinux", "disable SELinux and reboot")
OPTIONS = FailureClass("options", "an install option was refused: fix the vars")
PRIVILEGES = FailureClass("privileges", "run as root, or as a user with sudo")
OLD_PANEL = FailureClass("old_panel", "ISPmanager 4 (/usr/local/ispmgr) is installed: remove it first")
NOT_INSTALLED = FailureClass("not_installed", "install.sh ended without installing (a declined prompt?): see the log")
UNKNOWN = FailureClass("unknown", "see the installer log on the server")

# First match wins: order from the most specific message to the most general.
_MESSAGES: tuple[tuple[str, FailureClass], ...] = (
    ("Some errors with repository", REPOSITORY),
    ("Problems with repository", REPOSITORY),
    ("was not found in repos for", REPOSITORY),
    ("Unable to locate package lsb-release", REPOSITORY),
    ("Invalid activation key", LICENSE),
    ("You have no commercial license", LICENSE),
    ("Trial license for this IP has expired", LICENSE),
    ("Unsupported os version", UNSUPPORTED_OS),
    ("Unknown os version", UNSUPPORTED_OS),
    ("is not supported on Debian-based systems", UNSUPPORTED_OS),
    ("option not supported on this OS", OPTIONS),
    ("You have already installed package", ALREADY_INSTALLED),
    ("Do not use install.sh script for upgrading", ALREADY_INSTALLED),
    ("already installed", ALREADY_INSTALLED),
    ("Old managers is installed", OLD_PANEL),
    ("You have to low memory", HARDWARE),
    ("too little RAM is available", HARDWARE),
    ("You have incorrect hostname", HOSTNAME),
    ("SELinux is enabled", SELINUX),
    ("You must be root user", PRIVILEGES),
    ("Incorrect database type", OPTIONS),
    ("Incorrect mysql server", OPTIONS),
    ("Incorrect package name", OPTIONS),
    ("Empty mirror", OPTIONS),
)


def classify_output(output: str, exit_status: int) -> FailureClass:
    """The class of a failed install from its output and exit status.

    Exit 100 is apt's: the distribution's own repository was unreachable before any ISPmanager
    message (facts 7). Exit 0 without a panel is a declined EOL prompt.
    """
    for text, failure in _MESSAGES:
        if text in output:
            return failure
    if exit_status == 100:
        return REPOSITORY
    if exit_status == 0:
        return NOT_INSTALLED
    return UNKNOWN


def failure_line(output: str) -> str:
    """The line of `output` that explains the failure: the first known message, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if any(text in line for text, _ in _MESSAGES):
            return line
    return lines[-1] if lines else ""
