"""Install settings are read by plain typed checks (no pydantic at start-up), which must accept and
refuse exactly what the pydantic model they replaced did, with the same texts: inventories and
playbooks were written against it, and tests/data pins some of its messages.

The model below is that replaced model, kept here as the oracle."""

from __future__ import annotations

import datetime
import math
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agent.editions import RELEASES, Edition
from agent.errors import PanelSettingsError
from agent.installer.settings import (
    DEFAULT_INSTALLER_URL,
    INSTALL_KEYS,
    _validated,
    check_install_var,
    read_install_settings,
)
from agent.secrets import shown


class PydanticInstallSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    edition: Edition = "lite"
    release: str = "stable"
    dbtype: Literal["sqlite", "mysql"] = "sqlite"
    mysql_server: Literal["mysql", "mariadb"] | None = None
    install_recommended: bool = True
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
    installer_repository_url: str | None = None

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


def oracle(variables: dict) -> dict | str:
    try:
        return PydanticInstallSettings.model_validate(variables).model_dump()
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        return f"var '{key}': {problem['msg'].removeprefix('Value error, ')}"


def plain(variables: dict) -> dict | str:
    """Field by field, as the model validated (the rules across fields come after, in read_install_settings)."""
    try:
        settings = _validated(variables)
    except PanelSettingsError as error:
        return str(error)
    return {key: getattr(settings, key) for key in INSTALL_KEYS}


# What YAML (safe_load and our reader) can hand over, plus the edge cases of each kind of field.
ANY_YAML = [
    None,
    "",
    " ",
    "x",
    0,
    1,
    2,
    -1,
    0.0,
    1.0,
    1.5,
    10**400,
    True,
    False,
    [],
    {},
    ["a"],
    {"a": 1},
    b"",
    b"\xff",
    datetime.date(2026, 1, 2),
    datetime.datetime(2026, 1, 2, 3, 4),
]
BOOLEAN = [
    "true",
    "True",
    "TRUE",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "t",
    "f",
    "y",
    "n",
    "1",
    "0",
    "2",
    " yes",
    "yes ",
    "tru",
    "1.0",
    b"true",
    b"yes",
    b"0",
    2.0,
    float("nan"),
]
NUMBER = [
    60,
    "60",
    " 60 ",
    "1e3",
    "inf",
    "-inf",
    "nan",
    "infinity",
    "+1",
    "1_000",
    "0x10",
    "1,5",
    b"5",
    b" 5",
    float("inf"),
    float("nan"),
    "١٢",
]
STRING = ["https://example.com/install.sh", "ümlaut", b"abc", bytearray(b"a"), "a\nb"]
VALUES = {
    "edition": ["lite", "pro", "host", "business", "Lite", b"lite", "lite "],
    "release": ["stable", "beta", "Stable", "nightly", b"beta", "stable\n"],
    "dbtype": ["sqlite", "mysql", "MySQL", b"mysql"],
    "mysql_server": ["mysql", "mariadb", "maria"],
    "le_domain": ["panel.example.com", "nodot", "bad_name.example", b"a.example"],
    "installer_sha256": ["a" * 64, "A" * 64, "g" * 64, "a" * 63, b"a" * 64, " " + "a" * 63],
    "installer_url": STRING,
    "installer_repository_url": STRING,
    "installer_timeout_minutes": NUMBER,
}
CASES = [
    (key, value) for key in INSTALL_KEYS for value in ANY_YAML + VALUES.get(key, BOOLEAN if key not in VALUES else [])
]


def same(left: dict | str, right: dict | str) -> bool:
    """Equal errors, or equal settings of the same types (NaN equal to NaN)."""
    if isinstance(left, str) or isinstance(right, str):
        return left == right
    return left.keys() == right.keys() and all(_same_value(left[key], right[key]) for key in left)


def _same_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize(("key", "value"), CASES, ids=lambda item: repr(item)[:30])
def test_each_value_is_read_or_refused_as_the_pydantic_model_did(key, value):
    assert same(plain({key: value}), oracle({key: value}))


def test_the_first_bad_setting_in_field_order_is_the_one_reported():
    variables = {"installer_timeout_minutes": "soon", "dbtype": "oracle", "silent": "maybe"}
    assert plain(variables) == oracle(variables) == "var 'dbtype': Input should be 'sqlite' or 'mysql'"


def test_defaults_match():
    assert plain({}) == oracle({})


def test_check_install_var_raises_the_one_line_error():
    with pytest.raises(
        PanelSettingsError, match=r"^var 'silent': Input should be a valid boolean, unable to interpret input$"
    ):
        check_install_var("silent", "maybe")


def test_settings_are_frozen():
    settings = read_install_settings({})
    with pytest.raises(AttributeError):
        settings.edition = "pro"
