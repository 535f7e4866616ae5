"""What an install.sh failure means, read from the real script's output.

The real script colours its lines (red errors, green info) and prefixes none of them, so output
is read with the colours stripped and matched on the message text. Some failures are not the
script's own words: apt's (its helper packages, exit 100) and the shell's (a file it cannot write).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FailureClass:
    name: str
    advice: str  # what the operator does next
    retry_later: bool = False


REPOSITORY = FailureClass(
    "repository",
    "the vendor's repository answered with errors: run again later (install.sh retried it 4 times)",
    retry_later=True,
)
REPOSITORY_UNREACHABLE = FailureClass(
    "repository_unreachable",
    "the server cannot reach the vendor's repository (install.sh only warns and then finds no package): "
    "let it reach download.ispmanager.com and mirrors.download.ispmanager.com over HTTP and HTTPS, then run again",
    retry_later=True,
)
OS_REPOSITORY = FailureClass(
    "os_repository",
    "apt could not install install.sh's helpers (lsb-release, wget, gpg; python on old releases) from the "
    "distribution's own repository: fix the server's apt sources or its network (or install those packages), "
    "then run again",
)
INTERNAL_REPOSITORY = FailureClass(
    "internal_repository",
    "an unknown release sent install.sh to the vendor's internal repository: use release stable or beta",
)
LICENSE = FailureClass("license", "the license could not be activated: check the license for this IP or the key")
UNSUPPORTED_OS = FailureClass("unsupported_os", "this OS cannot take ISPmanager 6: reinstall the server")
EOL_OS = FailureClass(
    "eol_os",
    "the OS is at End of Support and install.sh asked whether to go on: upgrade the OS, or set allow_eol_os: true",
)
ALREADY_INSTALLED = FailureClass(
    "already_installed", "a panel is installed: upgrade with pkgupgrade.sh, do not reinstall"
)
HARDWARE = FailureClass("hardware", "the server is too small: add RAM, or keep dbtype sqlite and the nginx web server")
HOSTNAME = FailureClass("hostname", "set a fully qualified hostname, or ignore_hostname: true")
SELINUX = FailureClass("selinux", "disable SELinux and reboot")
OPTIONS = FailureClass("options", "an install option was refused: fix the vars")
PROMPT = FailureClass(
    "prompt",
    "install.sh asked a question (release or edition menu) and got no answer: give it a release and "
    "a known package name",
)
PRIVILEGES = FailureClass(
    "privileges",
    "install.sh ran without root rights (apt's lock or /etc/machine-id was not writable): log in "
    "as root, or as a user with sudo and sudo: true",
)
OLD_PANEL = FailureClass("old_panel", "ISPmanager 4 (/usr/local/ispmgr) is installed: remove it first")
DPKG_INTERRUPTED = FailureClass(
    "dpkg_interrupted",
    "an earlier install or upgrade on the server was cut off (a reboot mid-install?): run "
    "`dpkg --configure -a` there, then run again",
)
NOT_INSTALLED = FailureClass("not_installed", "install.sh ended without installing (a declined prompt?): see the log")
UNKNOWN = FailureClass("unknown", "see the installer log on the server")

# First match wins: order from the most specific message to the most general. Each text is a
# whole message or a part of one that the real script (or apt, or the shell) prints verbatim.
_MESSAGES: tuple[tuple[str, FailureClass], ...] = (
    # apt, before any ISPmanager message: not root (its lock), or no distribution repository
    ("dpkg was interrupted, you must manually run 'dpkg --configure -a'", DPKG_INTERRUPTED),
    ("Could not open lock file /var/lib/apt/lists/lock", PRIVILEGES),
    ("Unable to lock directory /var/lib/apt/lists/", PRIVILEGES),
    ("Unable to locate package lsb-release", OS_REPOSITORY),
    ("Unable to locate package wget", OS_REPOSITORY),
    ("Unable to locate package gpg", OS_REPOSITORY),
    ("Unable to locate package python", OS_REPOSITORY),
    ("You must be root user", PRIVILEGES),
    ("Problems with repository", REPOSITORY),
    ("Some errors with repository", REPOSITORY),
    ("was not found in repos for", REPOSITORY_UNREACHABLE),
    ("Invalid activation key", LICENSE),
    ("You have no commercial license", LICENSE),
    ("Trial license for this IP has expired", LICENSE),
    ("Please enter activation key or press Enter to exit", LICENSE),
    ("Unsupported os version", UNSUPPORTED_OS),
    ("Unknown os version", UNSUPPORTED_OS),
    ("is not supported on Debian-based systems", UNSUPPORTED_OS),
    ("Your operating system is at End of Support (EOL)", EOL_OS),
    ("option not supported on this OS", OPTIONS),
    ("You have already installed package", ALREADY_INSTALLED),
    ("Do not use install.sh script for upgrading", ALREADY_INSTALLED),
    ("already installed", ALREADY_INSTALLED),
    ("Old managers is installed", OLD_PANEL),
    ("You have to low memory", HARDWARE),
    ("You need to have at least", HARDWARE),
    ("too little RAM is available", HARDWARE),
    ("because too little RAM", HARDWARE),
    ("You have incorrect hostname", HOSTNAME),
    ("Enter new hostname(or Ctrl+C to exit)", HOSTNAME),
    ("SELinux is enabled", SELINUX),
    ("Incorrect database type", OPTIONS),
    ("Incorrect mysql server", OPTIONS),
    ("Incorrect package name", OPTIONS),
    ("Empty mirror", OPTIONS),
    ("Step 1. Select update branch:", PROMPT),
    ("Step 2. Select edition:", PROMPT),
)
# What tells an unknown release (a developer install from the vendor's internal repository) from an
# unreachable one. Not `Checking ispmanager-base repo... Not found`: the real script prints that on
# every run whose base repository is not set up yet, stable included. The internal host does show in
# apt's lines, and the mirror line (`Using mirrors.download.ispmanager.com`) is printed for every
# known release and never for an unknown one.
INTERNAL_REPOSITORY_HOST = "intrepo.download.ispmanager.com"
REPOSITORY_STAGE = "Checking ispmanager-base repo..."
_MIRROR_CHOSEN = re.compile(r"^Using \S+$")
# The shell's own words when install.sh cannot write a system file: dash says
# "install.sh: 12: cannot create /etc/machine-id: Permission denied", bash
# "install.sh: line 12: /etc/machine-id: Permission denied".
_NOT_WRITABLE = re.compile(r"^\S+: (line )?\d+: (cannot create )?/\S+: Permission denied$")
_COLOUR = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines that are never the reason: the usage report's noise on a server without a default route.
_NOISE = re.compile(r"^cat: /sys/class/net/.*: No such file or directory$")


def plain_lines(output: str) -> list[str]:
    """The output's non-empty lines, colours stripped."""
    return [line.strip() for line in _COLOUR.sub("", output).splitlines() if line.strip()]


def classify_output(output: str, exit_status: int) -> FailureClass:
    """The class of a failed install from its output and exit status.

    Exit 100 without a known line is still apt's (the helper packages failed before any
    ISPmanager message). Exit 0 without a panel is a declined prompt.
    """
    lines = plain_lines(output)
    matched = _explained(lines)
    if matched is not None:
        return matched[1]
    if any(_NOT_WRITABLE.match(line) for line in lines):
        return PRIVILEGES
    if exit_status == 100:
        return OS_REPOSITORY
    if exit_status == 0:
        return NOT_INSTALLED
    return UNKNOWN


def failure_line(output: str) -> str:
    """The line of `output` (colours stripped) that explains the failure: the first known message,
    else the shell's permission error, else the last line that is not noise."""
    lines = plain_lines(output)
    matched = _explained(lines)
    if matched is not None:
        return matched[0]
    for line in lines:
        if _NOT_WRITABLE.match(line):
            return line
    meaningful = [line for line in lines if not _NOISE.match(line)]
    return meaningful[-1] if meaningful else ""


def _explained(lines: list[str]) -> tuple[str, FailureClass] | None:
    """The explaining line and class: an internal repository first (whatever else failed after it,
    the release was wrong), then the most specific known message."""
    internal = _internal_repository_line(lines)
    if internal is not None:
        return internal, INTERNAL_REPOSITORY
    return _first_known(lines)


def _internal_repository_line(lines: list[str]) -> str | None:
    """The line showing that install.sh went to the internal repository, if it did: one naming
    the internal host, else the repository stage's first line in a run that chose no mirror."""
    for line in lines:
        if INTERNAL_REPOSITORY_HOST in line:
            return line
    stage = next((line for line in lines if line.startswith(REPOSITORY_STAGE)), None)
    if stage is not None and not any(_MIRROR_CHOSEN.match(line) for line in lines):
        return stage
    return None


def _first_known(lines: list[str]) -> tuple[str, FailureClass] | None:
    """The line and class of the most specific known message in `lines` (by _MESSAGES order)."""
    for text, failure in _MESSAGES:
        for line in lines:
            if text in line:
                return line, failure
    return None
