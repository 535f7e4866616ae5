"""The panel's own settings from a host's vars, checked, and the mgrctl calls they make as argument lists.

    panel_options: [Name, ...]                    `Option Name` lines of the options drop-in
    panel_params: {Name: value, ...}              `Name value` lines of the options drop-in
    panel_presets: [{name, settings: {param: value}}]   preset.edit calls
    panel_users: [{name, password, preset}]       user.edit calls (password: a secret)
    ihttpd_listen_ip: IP    ihttpd_port: 1-65535    ihttpd_allow: [network, ...]

No command argument is made by filling in text: each call is a list of `param=value` arguments, one
per value, and the transport quotes each once, so a password `pw preset=admin` stays the password.
Values a config file line or mgrctl cannot carry (line breaks, control characters) are refused, as
are parameter names ispagent sets itself (`sok`, `name`, `elid`...), which would override them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.errors import PanelSettingsError, did_you_mean
from agent.hoststate import StateKey
from agent.secrets import SecretRefused, register_secret, shown

PANEL_KEYS: tuple[str, ...] = (
    "panel_options", "panel_params", "panel_presets", "panel_users", "ihttpd_listen_ip", "ihttpd_port", "ihttpd_allow",
)  # fmt: skip
USER_KEYS = ("name", "password", "preset")
PRESET_KEYS = ("name", "settings")
# Parameters of every mgrctl call that ispagent sets: a preset setting of that name would replace them.
RESERVED_PARAMS = frozenset({"sok", "elid", "name", "func", "out", "lang", "auth", "authinfo", "su", "plid"})

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an option, a config key
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")  # a mgrctl parameter
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_MAX_TEXT = 1024

# A dry run's configure step: the files it would rewrite (verify does not judge them as they are).
CONFIGURE_PENDING: StateKey[tuple[str, ...]] = StateKey("configure_pending", "the files configure would rewrite")


@dataclass(frozen=True)
class PanelUser:
    name: str
    password: str
    preset: str

    def __repr__(self) -> str:
        return f"PanelUser(name={self.name!r}, password='***', preset={self.preset!r})"


@dataclass(frozen=True)
class PanelPreset:
    name: str
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PanelSettings:
    """The panel vars of one host, checked; values as mgrctl and the config files will get them."""

    options: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    presets: tuple[PanelPreset, ...] = ()
    users: tuple[PanelUser, ...] = ()
    ihttpd_listen_ip: str = "0.0.0.0"
    ihttpd_port: int = 1500
    ihttpd_allow: tuple[str, ...] = ()


def read_panel_settings(vars: Mapping[str, Any]) -> PanelSettings:
    """The PanelSettings of a host's merged vars; a bad value raises PanelSettingsError naming the var."""
    defaults = PanelSettings()
    return PanelSettings(
        options=_checked("panel_options", vars, _options, defaults.options),
        params=_checked("panel_params", vars, _params, defaults.params),
        presets=_checked("panel_presets", vars, _presets, defaults.presets),
        users=_checked("panel_users", vars, _users, defaults.users),
        ihttpd_listen_ip=_checked("ihttpd_listen_ip", vars, _ip, defaults.ihttpd_listen_ip),
        ihttpd_port=_checked("ihttpd_port", vars, _port, defaults.ihttpd_port),
        ihttpd_allow=_checked("ihttpd_allow", vars, _networks, defaults.ihttpd_allow),
    )


def check_panel_var(key: str, value: Any) -> None:
    """Raise PanelSettingsError when `value` cannot be the panel var `key`."""
    read_panel_settings({key: value})


def mgrctl_calls(settings: PanelSettings) -> list[list[str]]:
    """The `mgrctl -m ispmgr` calls that apply the presets and users, each a list of arguments."""
    calls = [
        ["preset.edit", "sok=ok", f"name={preset.name}", *(f"{key}={value}" for key, value in preset.settings)]
        for preset in settings.presets
    ]
    calls += [
        [
            "user.edit",
            "sok=ok",
            f"name={user.name}",
            f"passwd={user.password}",
            f"confirm={user.password}",
            f"preset={user.preset}",
        ]
        for user in settings.users
    ]
    return calls


class _Problem(Exception):
    """A problem inside a var's value: `where` is its path within the var (`[0].password`)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


Setting = TypeVar("Setting")


def _checked(key: str, vars: Mapping[str, Any], read: Callable[[Any], Setting], default: Setting) -> Setting:
    if key not in vars:
        return default
    try:
        return read(vars[key])
    except _Problem as problem:
        raise PanelSettingsError(f"var '{key}': {problem}") from None


def _options(value: Any) -> tuple[str, ...]:
    return tuple(_word(item, f"[{index}]", "an option name") for index, item in enumerate(_list(value, "option names")))


def _params(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_word(name, "", "a config key"), _text(item, name, "its line of the panel's config file"))
        for name, item in _mapping(value, "config keys to values").items()
    )


def _presets(value: Any) -> tuple[PanelPreset, ...]:
    presets = []
    for index, item in enumerate(_list(value, "{name, settings} mappings")):
        where = f"[{index}]"
        fields = _fields(item, where, PRESET_KEYS, required=("name",))
        settings = []
        for param, setting in _mapping(
            fields.get("settings") or {}, "parameters to values", f"{where}.settings"
        ).items():
            _param(param, f"{where}.settings")
            settings.append((param, _text(setting, f"{where}.settings.{param}", "one mgrctl argument")))
        presets.append(PanelPreset(_text(fields["name"], f"{where}.name", "one mgrctl argument"), tuple(settings)))
    return tuple(presets)


def _users(value: Any) -> tuple[PanelUser, ...]:
    users = []
    for index, item in enumerate(_list(value, "{name, password, preset} mappings")):
        where = f"[{index}]"
        fields = _fields(item, where, USER_KEYS, required=USER_KEYS)
        if isinstance(fields["password"], str):
            try:
                register_secret(fields["password"])  # before anything can echo it
            except SecretRefused as problem:
                raise _Problem(f"{where}.password", str(problem)) from None
        name = fields["name"]
        if not isinstance(name, str) or not _USER.fullmatch(name):
            raise _Problem(
                f"{where}.name", f"{shown(name)} is not a panel user name; use letters, digits, '_', '.', '-'"
            )
        password = _text(fields["password"], f"{where}.password", "one mgrctl argument", secret=True)
        if not password:
            raise _Problem(f"{where}.password", "the password is empty")
        users.append(PanelUser(name, password, _text(fields["preset"], f"{where}.preset", "one mgrctl argument")))
    return tuple(users)


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise _Problem("", f"{shown(value)} is not an IP address; 0.0.0.0 listens on every IPv4 address") from None


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Problem("", f"{shown(value)} is not a port number (1-65535)")
    return value


def _networks(value: Any) -> tuple[str, ...]:
    networks = []
    for index, item in enumerate(_list(value, "networks")):
        try:
            networks.append(str(ipaddress.ip_network(item if isinstance(item, str) else "", strict=False)))
        except ValueError:
            raise _Problem(
                f"[{index}]", f"{shown(item)} is not a network; write e.g. 10.0.0.0/8 or 2001:db8::/32"
            ) from None
    return tuple(networks)


def _list(value: Any, of: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Problem("", f"expected a list of {of}")
    return value


def _mapping(value: Any, of: str, where: str = "") -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Problem(where, f"expected a mapping of {of}")
    return value


def _fields(item: Any, where: str, known: Sequence[str], required: Sequence[str]) -> Mapping[str, Any]:
    fields = _mapping(item, ", ".join(known), where)
    for key in fields:
        if key not in known:
            raise _Problem(
                where, f"unknown key {shown(key)}; " + (did_you_mean(key, known) or f"known: {', '.join(known)}")
            )
    for key in required:
        if fields.get(key) is None:
            raise _Problem(where, f"no {key}; add {key}:")
    return fields


def _word(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise _Problem(where, f"{shown(value)} is not {what}; use letters, digits and '_'")
    return value


def _param(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _PARAM.fullmatch(value):
        raise _Problem(where, f"{shown(value)} is not a mgrctl parameter name; use letters, digits, '_' and '.'")
    if value.lower() in RESERVED_PARAMS:
        raise _Problem(f"{where}.{value}", "ispagent sets this parameter itself; remove it")


def _text(value: Any, where: str, carrier: str, *, secret: bool = False) -> str:
    """A value as one argument or one config line: text or a number, no line break or control character."""
    if isinstance(value, bool):
        raise _Problem(
            where, f"{str(value).lower()} is not a panel value; quote it as the panel writes it, e.g. 'on' or 'off'"
        )
    if isinstance(value, (int, float)):
        if secret:  # YAML read it as a number: `0755` would become 493
            raise _Problem(where, "is a number to YAML; quote the password so it is read as written")
        return str(value)
    if not isinstance(value, str):
        raise _Problem(where, f"expected text, got {type(value).__name__}")
    bad = next((char for char in value if not (char.isprintable() or char == " ")), None)
    if bad is not None:
        raise _Problem(
            where,
            f"holds the control character U+{ord(bad):04X} (a line break, tab or escape), "
            f"which {carrier} cannot carry; remove it",
        )
    if len(value) > _MAX_TEXT:
        raise _Problem(where, f"is {len(value)} characters long; at most {_MAX_TEXT}")
    return value
