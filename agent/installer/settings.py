"""The install settings of one host, read once from its vars (inventory <- playbook defaults).

Playbook vars do not go through the inventory's checks, so every value that reaches install.sh
is checked here again: a bad value must stop the host before anything runs on it.

Plain typed checks (agent/laxvalues.py), not a pydantic model: `inventory check` of a 1000-host
inventory reads these for every host, and importing pydantic and building a model's validator cost
more than the whole check. The accepted inputs and the error texts are pydantic's lax ones, which inventories and
playbooks were written against (tests/unit/test_installer_settings.py holds the two side by side).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from agent.editions import EDITIONS, RELEASES, Edition
from agent.errors import PanelSettingsError
from agent.laxvalues import boolean, choice, number, optional, string
from agent.secrets import shown

DEFAULT_INSTALLER_URL = "https://download.ispmanager.com/install.sh"
EU_INSTALLER_URL = "https://download.ispmanager.com/install.eu.sh"
DBTYPES = ("sqlite", "mysql")
MYSQL_SERVERS = ("mysql", "mariadb")


@dataclass(frozen=True)
class InstallSettings:
    """The vars the preflight and installer steps read; every other var is ignored here."""

    edition: Edition = "lite"
    release: str = "stable"
    dbtype: str = "sqlite"
    mysql_server: str | None = None
    install_recommended: bool = True  # ispmanager-lite (recommended software) or ispmanager-lite-common
    silent: bool = True
    ignore_hostname: bool = False
    allow_eol_os: bool = False
    no_letsencrypt: bool = False
    le_domain: str | None = None
    disable_fail2ban: bool = False
    installer_url: str = DEFAULT_INSTALLER_URL
    installer_eu: bool = False
    installer_sha256: str | None = None
    installer_timeout_minutes: float = 60.0
    installer_repository_url: str | None = None  # default: <installer origin>/repo/

    @property
    def script_url(self) -> str:
        if self.installer_eu and self.installer_url == DEFAULT_INSTALLER_URL:
            return EU_INSTALLER_URL
        return self.installer_url

    @property
    def repository_url(self) -> str:
        """Where the installer's packages come from: by default beside install.sh (the vendor's layout)."""
        if self.installer_repository_url:
            return self.installer_repository_url
        scheme, _, rest = self.script_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/repo/"


INSTALL_KEYS: tuple[str, ...] = tuple(field.name for field in fields(InstallSettings))


def read_install_settings(variables: Mapping[str, Any]) -> InstallSettings:
    """The host's install settings; PanelSettingsError names the var and the fix."""
    settings = _validated({key: value for key, value in variables.items() if key in INSTALL_KEYS})
    if settings.mysql_server and settings.dbtype != "mysql":
        raise PanelSettingsError("var 'mysql_server' needs 'dbtype: mysql' (the panel database is sqlite)")
    if settings.mysql_server and settings.edition == "business":
        raise PanelSettingsError("var 'mysql_server': install.sh refuses --mysql-server for Business; remove it")
    if settings.le_domain and settings.no_letsencrypt:
        raise PanelSettingsError("vars 'le_domain' and 'no_letsencrypt' contradict each other; keep one")
    return settings


def check_install_var(key: str, value: Any) -> None:
    """Raise PanelSettingsError when `value` cannot be the install setting `key` (alone, without the others)."""
    _validated({key: value})


def _validated(variables: dict[str, Any]) -> InstallSettings:
    """InstallSettings from the given settings, checked in field order: the first problem is raised."""
    values = {}
    for key in INSTALL_KEYS:  # field order, so the first problem reported is the first field's
        if key in variables:
            try:
                values[key] = _READERS[key](variables[key])
            except ValueError as error:
                raise PanelSettingsError(f"var '{key}': {error}") from None
    return InstallSettings(**values)


def _release(value: Any) -> str:
    text = string(value)
    if text not in RELEASES:
        raise ValueError(
            f"{shown(text)} is not one of {', '.join(RELEASES)} (install.sh would silently switch to "
            "ISPsystem's internal repository)"
        )
    return text


def _sha256(value: Any) -> str:
    text = string(value)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text.lower()):
        raise ValueError("give the 64 hex digits of the sha256 of install.sh")
    return text.lower()


def _domain(value: Any) -> str:
    from agent.inventory.addresses import is_fqdn

    text = string(value)
    if not is_fqdn(text):
        raise ValueError(f"{shown(text)} is not a fully qualified domain name")
    return text


_READERS: dict[str, Callable[[Any], Any]] = {
    "edition": choice(EDITIONS),
    "release": _release,
    "dbtype": choice(DBTYPES),
    "mysql_server": optional(choice(MYSQL_SERVERS)),
    "install_recommended": boolean,
    "silent": boolean,
    "ignore_hostname": boolean,
    "allow_eol_os": boolean,
    "no_letsencrypt": boolean,
    "le_domain": optional(_domain),
    "disable_fail2ban": boolean,
    "installer_url": string,
    "installer_eu": boolean,
    "installer_sha256": optional(_sha256),
    "installer_timeout_minutes": number,
    "installer_repository_url": optional(string),
}
