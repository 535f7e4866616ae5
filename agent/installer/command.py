"""The install.sh command line for one host: a pure function of its settings, OS and license key."""

from __future__ import annotations

from dataclasses import dataclass

from agent.installer.settings import InstallSettings

# OS families as the installer sees them: only Debian proper refuses --mysql-server.
FAMILIES = ("debian", "ubuntu", "redhat")


def package_name(settings: InstallSettings) -> str:
    """The package for the edition: Lite, Pro and Host share one; the license decides."""
    if settings.edition == "business":
        return "ispmanager-business"
    return "ispmanager-lite" if settings.install_recommended else "ispmanager-lite-common"


@dataclass(frozen=True)
class InstallerCommand:
    argv: tuple[str, ...]  # after `bash install.sh`
    notes: tuple[str, ...] = ()  # settings left out, and why


def installer_command(settings: InstallSettings, os_family: str, activation_key: str | None) -> InstallerCommand:
    """install.sh arguments: always --release, --dbtype and a package, so no prompt can appear."""
    argv = ["--release", settings.release, "--dbtype", settings.dbtype]
    notes = []
    if settings.mysql_server:
        if os_family == "debian":
            notes.append(
                f"mysql_server={settings.mysql_server} left out: install.sh refuses --mysql-server on Debian"
                " (Debian's own MariaDB is used)"
            )
        else:
            argv += ["--mysql-server", settings.mysql_server]
    flags = (
        (settings.silent, "--silent"),
        (settings.ignore_hostname, "--ignore-hostname"),
        (settings.allow_eol_os, "--allow-eol-os"),
        (settings.no_letsencrypt, "--no-letsencrypt"),
        (settings.disable_fail2ban, "--disable-fail2ban"),
    )
    argv += [flag for wanted, flag in flags if wanted]
    if settings.le_domain:
        argv += ["--le-domain", settings.le_domain]
    if activation_key:
        argv += ["--activation-key", activation_key]
    argv.append(package_name(settings))
    return InstallerCommand(tuple(argv), tuple(notes))
