"""Partner settings from inventory vars (or CLI options): where the API is, who we are, which tariffs.

Inventory vars (all optional except a way to find the credentials):

    partner_region: eu | ru           base URL when partner_api_url is not set (default eu)
    partner_api_url: URL              custom endpoint, e.g. the lab's emulator; https://USER:PASSWORD@host/...
                                      carries the credentials (never printed: masked like every URL password)
    partner_credentials_file: PATH    one line "user:password"; a regular UTF-8 file only its owner may read
    partner_output: bjson | xml       reply format asked for (default bjson)
    partner_timeout: SECONDS          per HTTP call (default 30)
    pricelists: {lite: ID, ...}       tariff ids per edition (defaults: 55227..55230)
    reuse_free: true|false            move a parked license of the same edition instead of ordering
    license_key_wait: SECONDS         how long to poll for the activation key after an order (60)
    partner_settle: SECONDS           how long to look for an order whose answer was lost (3)
    partner_order_interval: SECONDS   at least this long between two orders of the account, across every
                                      agent on its ledger (default 0: one at a time, back to back)
    ledger_path: PATH                 the ledger's SQLite file (default STATE_DIR/ledger.sqlite)

The environment variable ISPAGENT_PARTNER_AUTHINFO ("user:password"), when set, is used instead of
the credentials file or the URL's credentials.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from agent.editions import EDITIONS
from agent.errors import PartnerConfigError
from agent.inputfile import decode_input, read_input_bytes
from agent.secrets import SecretRefused, register_secret, register_url_password, shown
from agent.userpath import expand_home

AUTHINFO_ENV = "ISPAGENT_PARTNER_AUTHINFO"
REGION_URLS = {
    "eu": "https://api-eu.ispmanager.com/billmgr",  # accounts at eu.ispmanager.com
    "ru": "https://api.ispmanager.ru/billmgr",  # Russia-registered accounts
}
# Tariff ids per edition (the vendor's reselling docs). RU accounts have other, unconfirmed ids: set `pricelists`.
DEFAULT_PRICELISTS = {"lite": "55227", "pro": "55228", "host": "55229", "business": "55230"}
TRIAL_PRICELIST = "55239"  # "ispmanager 6 trial" (facts §4.3): never ordered by ispagent, known to the lab's account
PERIOD_MONTHS = {"monthly": 1, "annual": 12}


PARTNER_KEYS: tuple[str, ...] = (
    "partner_region", "partner_api_url", "partner_credentials_file", "partner_output", "partner_timeout",
    "pricelists", "reuse_free", "license_key_wait", "partner_settle", "partner_order_interval",
)  # fmt: skip


@dataclass(frozen=True)
class PartnerVars:
    """The partner vars of a host, checked; the credentials are read only when the account is used."""

    api_url: str
    credentials_file: Path | None = None
    output: str = "bjson"
    timeout: float = 30.0
    pricelists: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PRICELISTS))
    reuse_free: bool = False
    key_wait: float = 60.0
    settle: float = 3.0
    order_interval: float = 0.0
    url_credentials: tuple[str, str] | None = field(default=None, repr=False)  # from partner_api_url's userinfo

    def with_credentials(self, credentials: tuple[str, str] | None = None) -> PartnerSettings:
        """The settings to call the account with, for `credentials` (user, password) or those read
        from $ISPAGENT_PARTNER_AUTHINFO, the URL or the credentials file."""
        user, password = credentials or read_credentials(self.credentials_file, self.url_credentials)
        return PartnerSettings(**{f.name: getattr(self, f.name) for f in fields(self)}, user=user, password=password)


@dataclass(frozen=True)
class PartnerSettings(PartnerVars):
    """PartnerVars with the credentials: what a client calls the account with."""

    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def account(self) -> str:
        """Identifies the account (not secret): one circuit breaker and order gate per account."""
        return f"{self.user}@{self.api_url}"

    def editions_by_pricelist(self) -> dict[str, str]:
        return {pricelist: edition for edition, pricelist in self.pricelists.items()}

    def pricelist(self, edition: str) -> str:
        return self.pricelists[edition]


def partner_vars(vars: Mapping[str, Any]) -> PartnerVars:
    """PartnerVars from a host's vars (no file is read); a bad value is a one-line PartnerConfigError."""
    output = str(vars.get("partner_output", "bjson"))
    if output not in ("bjson", "xml"):
        raise PartnerConfigError(f"partner_output: {shown(output)} is not one of bjson, xml")
    credentials = vars.get("partner_credentials_file")
    if credentials is not None and not isinstance(credentials, str):
        raise PartnerConfigError("partner_credentials_file: expected the path of a file holding user:password")
    api_url, url_credentials = _userinfo_removed(_api_url(vars))
    if url_credentials and credentials:
        raise PartnerConfigError(
            "partner_api_url carries a user and password and partner_credentials_file is set: keep one"
        )
    return PartnerVars(
        api_url=api_url,
        url_credentials=url_credentials,
        credentials_file=expand_home(credentials) if credentials else None,
        output=output,
        timeout=_positive(vars, "partner_timeout", 30.0),
        pricelists=_pricelists(vars.get("pricelists")),
        reuse_free=_boolean(vars, "reuse_free"),
        key_wait=_positive(vars, "license_key_wait", 60.0),
        settle=_positive(vars, "partner_settle", 3.0),
        order_interval=_seconds(vars, "partner_order_interval", 0.0),
    )


def settings_from_vars(vars: Mapping[str, Any]) -> PartnerSettings:
    """PartnerSettings from vars (CLI options and inventory vars), credentials read."""
    return partner_vars(vars).with_credentials()


def _api_url(vars: Mapping[str, Any]) -> str:
    url = vars.get("partner_api_url")
    if url is None:
        region = str(vars.get("partner_region", "eu"))
        if region not in REGION_URLS:
            raise PartnerConfigError(
                f"partner_region: {shown(region)} is not one of {', '.join(REGION_URLS)}; or set partner_api_url"
            )
        return REGION_URLS[region]
    parts = _split(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PartnerConfigError(f"partner_api_url: {shown(url)} is not an http(s) URL")
    if parts.scheme == "http" and not _local(parts.hostname):
        # authinfo travels in every request: plain HTTP only to the lab or this machine.
        raise PartnerConfigError(f"partner_api_url: {shown(url)} is plain http to a public host; use https")
    return str(url).rstrip("/")


def _userinfo_removed(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without `user:password@`, and the credentials it carried (the client never sees them in the URL)."""
    parts = _split(url)
    if parts.username is None and parts.password is None:
        return url, None
    try:
        register_url_password(url)
    except SecretRefused as problem:
        raise PartnerConfigError(f"partner_api_url: the password: {problem}") from None
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if not user or not password:
        raise PartnerConfigError(
            "partner_api_url: write the credentials as https://USER:<password>@host/..., both parts"
        )
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl(), (user, password)


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # an unbalanced "[" or "]": urlsplit's "Invalid IPv6 URL"
        raise PartnerConfigError(f"partner_api_url: {shown(url)} is not an http(s) URL") from None


def _local(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return address.is_loopback or address in ipaddress.ip_network("198.18.0.0/15") or address.is_private


def read_credentials(path: Any, url_credentials: tuple[str, str] | None = None) -> tuple[str, str]:
    """(user, password) from ISPAGENT_PARTNER_AUTHINFO, else from the URL, else from the credentials file at `path`."""
    text = os.environ.get(AUTHINFO_ENV)
    source = f"${AUTHINFO_ENV}"
    if not text and url_credentials:
        return url_credentials
    if not text:
        if not path:
            raise PartnerConfigError(
                f"no partner credentials: set partner_credentials_file (a 0600 file holding user:password) or ${AUTHINFO_ENV}"
            )
        text, source = _read_private_file(expand_home(str(path))), str(path)
    line = next((l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")), "")
    user, sep, password = line.partition(":")
    if not sep or not user or not password:
        raise PartnerConfigError(f"{source}: expected one line 'user:password'")
    try:
        register_secret(password)
        register_secret(line)
    except SecretRefused as problem:
        raise PartnerConfigError(f"{source}: the partner password: {problem}") from None
    return user, password


def _read_private_file(path: Path) -> str:
    """The text of a credentials file: a regular UTF-8 file that only its owner may read or write."""
    try:
        file = read_input_bytes(path, PartnerConfigError, what="credentials file", max_bytes=64 * 1024)
        text = decode_input(file.data, path, PartnerConfigError, what="credentials file")
    except PartnerConfigError as error:
        raise PartnerConfigError(f"partner_credentials_file: {error}") from None
    if file.mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PartnerConfigError(
            f"partner_credentials_file: {path} is accessible by others (mode {file.mode:04o}): run chmod 600 {path}"
        )
    return text


def _pricelists(value: Any) -> dict[str, str]:
    if value is None:
        return dict(DEFAULT_PRICELISTS)
    if not isinstance(value, Mapping):
        raise PartnerConfigError("pricelists: expected a mapping of edition to tariff id, e.g. {lite: 55227}")
    result = dict(DEFAULT_PRICELISTS)
    for edition, pricelist in value.items():
        if edition not in EDITIONS:
            raise PartnerConfigError(f"pricelists: {shown(edition)} is not one of {', '.join(EDITIONS)}")
        if not str(pricelist).isdigit():
            raise PartnerConfigError(f"pricelists.{edition}: {shown(pricelist)} is not a numeric tariff id")
        result[edition] = str(pricelist)
    return result


def _positive(vars: Mapping[str, Any], key: str, default: float) -> float:
    value = vars.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise PartnerConfigError(f"{key}: {shown(value)} is not a positive number of seconds")
    return number


def _seconds(vars: Mapping[str, Any], key: str, default: float) -> float:
    """A number of seconds from 0 to one hour (0: no wait)."""
    value = vars.get(key, default)
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number <= 3600:
        raise PartnerConfigError(f"{key}: {shown(value)} is not a number of seconds from 0 to 3600")
    return number


def _boolean(vars: Mapping[str, Any], key: str) -> bool:
    value = vars.get(key, False)
    if not isinstance(value, bool):
        raise PartnerConfigError(f"{key}: {shown(value)} is not true or false")
    return value
