"""The install settings of one host, read once from its vars (inventory <- playbook defaults).

Playbook vars do not go through the inventory's checks, so every value that reaches install.sh
is checked here again: a bad value must stop the host before anything runs on it.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agent.editions import RELEASES, Edition
from agent.errors import PanelSettingsError
from agent.secrets import shown

DEFAULT_INSTALLER_URL = "https://download.ispmanager.com/install.sh"
EU_INSTALLER_URL = "https://download.ispmanager.com/install.eu.sh"


class InstallSettings(BaseModel):
    """The vars the preflight and installer steps read; every other var is ignored here."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    edition: Edition = "lite"
    release: str = "stable"
    dbtype: Literal["sqlite", "mysql"] = "sqlite"
    mysql_server: Literal["mysql", "mariadb"] | None = None
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

    @field_validator("release")
    @classmethod
    def _known_release(cls, value: str) -> str:
        if value not in RELEASES:
            raise ValueError(
                f"{shown(value)} is not one of {', '.join(RELEASES)} (install.sh would silently switch to "
                "ISPsystem's internal repository)"
            )
        return value

    @field_validator("installer_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())):
            raise ValueError("give the 64 hex digits of the sha256 of install.sh")
        return value.lower() if value else value

    @field_validator("le_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        from agent.inventory.addresses import is_fqdn

        if value is not None and not is_fqdn(value):
            raise ValueError(f"{shown(value)} is not a fully qualified domain name")
        return value

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


INSTALL_KEYS: tuple[str, ...] = tuple(InstallSettings.model_fields)


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
    try:
        return InstallSettings.model_validate(variables)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        raise PanelSettingsError(f"var '{key}': {message}") from None
