"""Can this host take ISPmanager 6? The installer's own rules as pure functions.

The installer skips its RAM check and its hostname check, and accepts an EOL OS, when run with
--silent (which we use, since a prompt without a terminal ends the run): so these rules must be
checked here, before a license is paid for, not left to install.sh.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.installer.messages import REPOSITORY_UNREACHABLE
from agent.installer.settings import InstallSettings

MIN_RAM_MB = 512  # RAM must be above this
MIN_RAM_MB_EL8 = 1536
MINI_RAM_MB = 1024  # at or below: sqlite + nginx only
MIN_DISK_ROOT_MB = 300  # RedHat family only, as in install.sh
MIN_DISK_USR_LOCAL_MB = 1024
PANEL_PORTS = (80, 443, 1500)

# codename -> (version, EOL?)
DEBIAN = {
    "wheezy": ("7", True),
    "jessie": ("8", True),
    "stretch": ("9", True),
    "buster": ("10", True),
    "bullseye": ("11", False),
    "bookworm": ("12", False),
}
UBUNTU = {
    "trusty": ("14.04", True),
    "xenial": ("16.04", True),
    "bionic": ("18.04", True),
    "focal": ("20.04", True),
    "jammy": ("22.04", False),
    "noble": ("24.04", False),
}
REDHAT = {"6": True, "7": True, "8": False, "9": False}  # major -> EOL?
_HOSTNAME_LAST_LABEL = re.compile(r"[A-Za-z0-9-]+")


# A repository_error of the gather script's probe that is an answer: curl's "HTTP 503", python's
# "HTTP Error 503: ..." (no answer reads "HTTP 000", "<urlopen error ...>" or "wget exit 4").
_SERVER_ERROR = re.compile(r"\bHTTP (Error )?5\d\d\b")


@dataclass(frozen=True)
class HostFacts:
    """What preflight gathered on the host, parsed."""

    os_id: str = ""
    os_version: str = ""  # VERSION_ID
    os_codename: str = ""
    os_like: str = ""
    redhat_release: bool = False
    arch: str = ""
    memory_mb: int = 0  # MemTotal, as `free -m` shows it
    disk_root_mb: int | None = None
    disk_usr_local_mb: int | None = None
    hostname: str = ""  # `hostname -f` (Debian/Ubuntu) or `hostname` (RedHat), as install.sh reads it
    selinux_enabled: bool = False
    mgr5_present: bool = False
    license_info: dict[str, str] = field(default_factory=dict)  # empty when mgrctl is absent or failed
    panel_version: str | None = None
    old_panel: bool = False  # /usr/local/ispmgr (ISPmanager 4)
    ports_in_use: tuple[int, ...] = ()
    primary_ipv4: str | None = None
    install_running: bool = False  # our detached install.sh is still running
    # Our install.sh was started and ended without an exit status: the server restarted (or it was
    # killed) mid-install. What it left (a panel without its packages, a license already fetched)
    # is not an installed panel.
    install_interrupted: bool = False
    dpkg_interrupted: bool = False  # dpkg's journal holds an unfinished run: apt installs nothing until it is replayed
    repository_reachable: bool | None = None  # None: not probed
    repository_error: str = ""
    uid: int | None = None  # who install.sh would run as (after sudo, if the host uses it)
    helpers_missing: tuple[str, ...] = ()  # of lsb-release, wget, gpg: install.sh apt-installs them first
    distribution_repository: str = ""  # the first http(s) source of apt, where those come from
    distribution_reachable: bool | None = None  # None: not probed (nothing to install, or no apt)
    distribution_error: str = ""
    # False: the probe stopped once it found an installed panel, which is not judged; the facts
    # only the rules read (memory, disks, hostname, ports, repositories...) were not gathered.
    complete: bool = True

    @property
    def family(self) -> str:
        """debian, ubuntu, redhat or unknown: the installer's view of the OS."""
        if (
            self.redhat_release
            or self.os_id in ("rhel", "centos", "almalinux", "rocky", "ol", "vzlinux", "fedora")
            or "rhel" in self.os_like.split()
        ):
            return "redhat"
        if self.os_id in ("debian", "ubuntu"):
            return self.os_id
        return "unknown"

    @property
    def installed(self) -> bool:
        return (
            self.mgr5_present and bool(self.license_info) and not self.install_running and not self.install_interrupted
        )

    @property
    def os_label(self) -> str:
        return f"{self.os_id} {self.os_version or self.os_codename}".strip()


@dataclass(frozen=True)
class Problem:
    rule: str
    message: str  # what is wrong, then the fix


@dataclass(frozen=True)
class Verdict:
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def os_support(facts: HostFacts) -> tuple[bool, bool]:
    """(supported, end of life) by the installer's lists."""
    if facts.family == "redhat":
        major = facts.os_version.split(".")[0]
        if facts.os_id == "vzlinux" and major == "8":
            return True, True
        return (major in REDHAT, REDHAT.get(major, False))
    table = DEBIAN if facts.family == "debian" else UBUNTU if facts.family == "ubuntu" else {}
    if facts.os_codename in table:
        return True, table[facts.os_codename][1]
    return False, False


def hostname_valid(name: str) -> bool:
    """install.sh's check: 2-50 characters, a dot, no underscore, last label [A-Za-z0-9-] only."""
    if not 2 <= len(name) <= 50 or "." not in name or "_" in name:
        return False
    return bool(_HOSTNAME_LAST_LABEL.fullmatch(name.rsplit(".", 1)[1]))


def evaluate(facts: HostFacts, settings: InstallSettings) -> Verdict:
    """Every rule the host breaks, each naming the rule and the fix. An installed panel passes:
    it is not reinstalled, so the installer's rules do not apply to it."""
    if facts.install_interrupted:  # judged before that install was started
        return Verdict(
            (),
            (
                "an install started by ispagent was cut off (the server restarted, or install.sh was "
                "killed): install.sh runs again",
            ),
        )
    if facts.installed or facts.install_running:
        what = "an install started by ispagent is running" if facts.install_running else "a panel is installed"
        return Verdict((), (f"{what}: install.sh will not be run again",))
    problems = [p for rule in _RULES for p in rule(facts, settings)]
    notes = []
    if settings.mysql_server and facts.family == "debian":
        notes.append("mysql_server is ignored on Debian: install.sh refuses --mysql-server there")
    return Verdict(tuple(problems), tuple(notes))


def _os(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    supported, eol = os_support(facts)
    if facts.family == "unknown":
        yield Problem(
            "os",
            f"unsupported OS {facts.os_label or 'unknown'}: ISPmanager 6 needs AlmaLinux/Rocky 8-9, "
            "Debian 11-12 or Ubuntu 22.04/24.04; reinstall the server",
        )
    elif not supported:
        version = facts.os_codename or facts.os_version
        yield Problem(
            "os",
            f"Unsupported os version ({version}): {facts.os_label} is not in the installer's list; "
            "reinstall with Debian 12, Ubuntu 24.04 or AlmaLinux 9",
        )
    elif eol and not settings.allow_eol_os:
        yield Problem(
            "eol_os",
            f"{facts.os_label} is at End of Support (EOL): upgrade the OS, or set allow_eol_os: true to install anyway",
        )


def _business(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if settings.edition == "business" and facts.family in ("debian", "ubuntu"):
        yield Problem(
            "business_os",
            "ispmanager Business is not supported on Debian-based systems: use an EL 8/9 "
            "server, or edition lite/pro/host",
        )


def _ram(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    el8 = facts.family == "redhat" and facts.os_version.split(".")[0] in ("8", "9")
    minimum = MIN_RAM_MB_EL8 if el8 else MIN_RAM_MB
    if facts.memory_mb <= minimum:
        yield Problem(
            "ram",
            f"You have to low memory: {facts.memory_mb} MB (the installer needs more than {minimum} MB)"
            ": give the server more RAM",
        )
    elif facts.memory_mb <= MINI_RAM_MB and settings.dbtype == "mysql":
        yield Problem(
            "ram_mysql",
            f"{facts.memory_mb} MB RAM: Can't use MySQL to run the panel because too little RAM "
            f"is available (at most {MINI_RAM_MB} MB means sqlite); set dbtype: sqlite or add RAM",
        )


def _disk(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if facts.family != "redhat":
        return
    for path, free, minimum in (
        ("/", facts.disk_root_mb, MIN_DISK_ROOT_MB),
        ("/usr/local", facts.disk_usr_local_mb, MIN_DISK_USR_LOCAL_MB),
    ):
        if free is not None and free < minimum:
            yield Problem("disk", f"{free} MB free on {path}, the installer needs {minimum} MB: free some space")


def _hostname(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if not settings.ignore_hostname and not hostname_valid(facts.hostname):
        yield Problem(
            "hostname",
            f"You have incorrect hostname: {facts.hostname or '(empty)'}: set a fully qualified "
            "name (hostnamectl set-hostname and /etc/hosts), or ignore_hostname: true",
        )


def _selinux(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if facts.selinux_enabled:
        yield Problem(
            "selinux",
            "SELinux is enabled: the installer aborts; set SELINUX=disabled in /etc/selinux/config and reboot",
        )


def _old_panel(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if facts.old_panel:
        yield Problem("old_panel", "Old managers is installed (/usr/local/ispmgr, ISPmanager 4): remove it first")


def _ports(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    if facts.ports_in_use:
        ports = ", ".join(map(str, facts.ports_in_use))
        yield Problem(
            "ports",
            f"port(s) {ports} already in use by another service: the panel needs 80, 443 and 1500; stop that service",
        )


def _repository(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    # The same split as the installer's own failures: a repository answering with errors is the
    # vendor's to fix (retry later); one that never answers is the host's network, and install.sh
    # would only warn and end with "<package> was not found in repos" (repository_unreachable).
    if facts.repository_reachable is not False:
        return
    error = facts.repository_error or "no answer"
    if _SERVER_ERROR.search(error):
        yield Problem(
            "repository",
            f"the installer's repository {settings.repository_url} is not reachable from the "
            f"host ({error}): check its network and firewall, or retry later",
        )
        return
    yield Problem(
        REPOSITORY_UNREACHABLE.name,
        f"the installer's repository {settings.repository_url} does not answer "
        f"the host ({error}): {REPOSITORY_UNREACHABLE.advice}",
    )


def _root(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    # Without root install.sh fails at its first apt step (apt's lock file, exit 100), after the
    # license was paid for.
    if facts.uid not in (None, 0):
        yield Problem(
            "root",
            f"commands run as uid {facts.uid}: install.sh must run as root; log in as root, or "
            "as a user with passwordless sudo (sudo: true)",
        )


def _distribution_repository(facts: HostFacts, settings: InstallSettings) -> Iterator[Problem]:
    # install.sh apt-installs lsb-release, wget and gpg before anything else; without the
    # distribution's repository that ends the run with "Unable to locate package" (exit 100).
    if not facts.helpers_missing or facts.distribution_reachable is not False:
        return
    missing = ", ".join(facts.helpers_missing)
    where = facts.distribution_repository or "no http(s) source in /etc/apt/sources.list*"
    yield Problem(
        "os_repository",
        f"install.sh must first install {missing} from the distribution's repository, "
        f"which does not answer ({where}: {facts.distribution_error or 'no answer'}): "
        "fix the host's apt sources or network, or install those packages first",
    )


_RULES = (
    _os,
    _business,
    _root,
    _ram,
    _disk,
    _hostname,
    _selinux,
    _old_panel,
    _ports,
    _repository,
    _distribution_repository,
)
