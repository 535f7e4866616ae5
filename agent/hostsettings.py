"""A host's settings: its vars read once, when an inventory is loaded and a run starts, into typed objects.

Vars are free-form for templates, except the names ispagent itself reads: install settings
(edition, release, dbtype, installer_*...), the partner account (partner_*, pricelists, reuse_free,
license_key_wait), the ledger (ledger_path, ledger_url), the program file, the license
(period, fqdn, activation_key) and the panel's own settings (panel_*, ihttpd_*). Those are checked where they are written (`check_var`, used by the
inventory reader so an error names its line) and together per host (`read_host_settings`). A var
spelled almost like one of them, or with one of their prefixes, is a typo: `installer_sha265`
would otherwise silently drop the checksum pin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.editions import PERIODS
from agent.errors import InputError, did_you_mean
from agent.installer.settings import INSTALL_KEYS, InstallSettings, check_install_var, read_install_settings
from agent.inventory.model import Secret
from agent.panel.config import PANEL_KEYS, PanelSettings, check_panel_var, read_panel_settings
from agent.partner.settings import PARTNER_KEYS, PartnerVars, partner_vars
from agent.secrets import SecretRefused, register_url_password, shown
from agent.userpath import expand_home

LEDGER_KEYS: tuple[str, ...] = ("ledger_path", "ledger_url")
PROGRAM_KEYS: tuple[str, ...] = ("program_file",)
LICENSE_KEYS: tuple[str, ...] = ("period", "fqdn", "activation_key")
SETTING_KEYS: frozenset[str] = frozenset(
    (*INSTALL_KEYS, *PARTNER_KEYS, *LEDGER_KEYS, *PROGRAM_KEYS, *LICENSE_KEYS, *PANEL_KEYS)
)
# A var with one of these prefixes that is not a setting is a typo, however far from every setting.
RESERVED_PREFIXES: tuple[str, ...] = ("installer_", "partner_", "ledger_", "license_")
_PATH_KEYS = ("ledger_path", "program_file", "partner_credentials_file")


@dataclass(frozen=True)
class LicenseSettings:
    """What license the host needs; `activation_key` (a Secret) when the operator brings one."""

    edition: str
    period: str
    fqdn: str | None
    activation_key: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AccountSettings:
    """What the hosts of one partner account share: the account, the ledger recording it, the program's rules."""

    partner: PartnerVars
    ledger_url: str | None = None
    ledger_path: Path | None = None
    program_file: Path | None = None

    def ledger_location(self, state_dir: Path | None) -> str | Path:
        """The ledger's URL or SQLite file: these vars, else the environment, else `state_dir`."""
        from agent.ledger import ledger_location

        return ledger_location({"ledger_url": self.ledger_url, "ledger_path": self.ledger_path}, state_dir)

    def program_location(self) -> Path:
        from agent.economics.program import program_location

        return program_location({"program_file": self.program_file})

    def key(self) -> tuple[Any, ...]:
        """Equal for hosts that share all of it (hashable: the price lists are a mapping)."""
        partner = tuple(
            (f.name, tuple(sorted(value.items())) if isinstance(value, Mapping) else value)
            for f in fields(self.partner)
            for value in [getattr(self.partner, f.name)]
        )
        return partner, self.ledger_url, self.ledger_path, self.program_file

    def describe(self) -> str:
        """The account and its ledger in a few words, secrets masked: how messages name an account."""
        from agent.secrets import mask

        ledger = self.ledger_url or self.ledger_path or "the default ledger"
        return mask(f"account {self.partner.api_url} (ledger {ledger})")


@dataclass(frozen=True)
class HostSettings:
    """Everything ispagent itself reads from one host's vars, checked: its own, and its account's."""

    install: InstallSettings
    license: LicenseSettings
    account: AccountSettings
    panel: PanelSettings = PanelSettings()


def unknown_var_problem(key: str) -> str | None:
    """Why `key` looks like a misspelt setting (with the fix), or None for a free template var."""
    if key in SETTING_KEYS:
        return None
    hint = did_you_mean(key, SETTING_KEYS, cutoff=0.85)
    if hint:
        return f"{shown(key)} is not a setting ispagent knows; {hint}"
    if key.startswith(RESERVED_PREFIXES):
        prefix = next(p for p in RESERVED_PREFIXES if key.startswith(p))
        known = sorted(k for k in SETTING_KEYS if k.startswith(prefix))
        return f"{shown(key)} is not a setting ispagent knows; {prefix}* settings are: {', '.join(known)}"
    return None


def check_var(key: str, value: Any) -> None:
    """Raise an InputError "var 'KEY': problem" when `key` is a misspelt setting or `value` cannot be it."""
    if not isinstance(key, str):  # a playbook's `vars: {1: x}`: YAML reads the name as a number
        raise InputError(f"var '{key}': a var name is text, not a number or date; write it in quotes")
    problem = unknown_var_problem(key)
    if problem:
        raise InputError(f"var '{key}': {problem}")
    try:
        _check_value(key, value)
    except InputError as error:
        text = str(error).removeprefix(f"var '{key}': ").removeprefix(f"{key}: ")
        raise type(error)(f"var '{key}': {text}") from None


def _check_value(key: str, value: Any) -> None:
    if key in INSTALL_KEYS:
        check_install_var(key, value)
    elif key in PANEL_KEYS:
        check_panel_var(key, value)
    elif key in PARTNER_KEYS:
        partner_vars({key: value})
    elif key in _PATH_KEYS or key == "ledger_url":
        _text(key, value)
    elif key == "period" and value not in PERIODS:
        raise InputError(f"var 'period': {shown(value)} is not one of {', '.join(PERIODS)}")


def read_host_settings(vars: Mapping[str, Any]) -> HostSettings:
    """The HostSettings of merged vars (playbook defaults <- inventory). Raises an InputError naming the var.

    Misspelt names are caught where vars are written (`check_var`); this reads the known ones.
    """
    period = vars.get("period", "monthly")
    if period not in PERIODS:
        raise InputError(f"var 'period': {shown(period)} is not one of {', '.join(PERIODS)}")
    install = read_install_settings(vars)
    activation_key = vars.get("activation_key")
    return HostSettings(
        install=install,
        license=LicenseSettings(
            edition=install.edition,
            period=period,
            fqdn=str(vars["fqdn"]) if vars.get("fqdn") else None,
            activation_key=Secret(activation_key) if activation_key else None,
        ),
        account=read_account_settings(vars),
        panel=read_panel_settings(vars),
    )


def read_account_settings(vars: Mapping[str, Any]) -> AccountSettings:
    """The AccountSettings of merged vars (partner_*, ledger_*, program_file). Raises an InputError naming the var."""
    return AccountSettings(
        partner=partner_vars(vars),
        ledger_url=_text("ledger_url", vars.get("ledger_url")),
        ledger_path=_path("ledger_path", vars.get("ledger_path")),
        program_file=_path("program_file", vars.get("program_file")),
    )


# Per host and never a reason for read_host_settings to refuse (each is checked where it is written).
_PER_HOST_KEYS = frozenset(("fqdn", "activation_key"))


def settings_key(vars: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What read_host_settings' verdict on `vars` depends on, hashable; None when a value cannot be.

    Hosts of one inventory mostly share their settings (they differ in fqdn): checking each distinct
    set once is what keeps a thousand-host `inventory check` fast. Values are keyed with their
    types, so `1`, `1.0` and `true` (equal in Python) stay apart.
    """
    try:
        return tuple(
            sorted(
                (key, _frozen(value))
                for key, value in vars.items()
                if key in SETTING_KEYS and key not in _PER_HOST_KEYS
            )
        )
    except TypeError:
        return None


def _frozen(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((_frozen(key), _frozen(item)) for key, item in value.items()))
    hash(value)  # TypeError for anything else unhashable
    return (type(value).__name__, value)


def _text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"var '{key}': expected a non-empty string, got {type(value).__name__} {shown(value, 40)}")
    if key == "ledger_url":
        try:
            register_url_password(value)
        except SecretRefused as problem:
            raise InputError(f"var 'ledger_url': the password: {problem}") from None
        if "://" not in value:
            raise InputError(
                "var 'ledger_url': expected a database URL like postgresql+psycopg://USER:<password>@HOST/DB"
            )
    return value


def _path(key: str, value: Any) -> Path | None:
    text = _text(key, value)
    return expand_home(text) if text else None
