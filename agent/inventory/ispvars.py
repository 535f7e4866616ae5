"""The ISPmanager vars (edition, period, release, fqdn, activation_key): checked wherever they appear.

Every other var is free-form and passed to templates as written, except a key spelled almost like
an ISPmanager one: `editon: lite` would otherwise be ignored and the host licensed with the default
edition, which costs money.
"""

from __future__ import annotations

from typing import Any

from agent.editions import EDITIONS, PERIODS, RELEASES
from agent.errors import did_you_mean
from agent.inventory.addresses import is_fqdn
from agent.inventory.model import Secret
from agent.secrets import SecretRefused, register_secret, shown
from agent.yamlnodes import LocatedNode

# The installer rejects longer hostnames (install.sh's hostname check).
MAX_FQDN_LENGTH = 50

CHOICES: dict[str, tuple[str, ...]] = {"edition": EDITIONS, "period": PERIODS, "release": RELEASES}
ISPMANAGER_VARS: tuple[str, ...] = ("edition", "period", "release", "fqdn", "activation_key")


def read_vars(node: LocatedNode) -> dict[str, Any]:
    """A `vars:` mapping as plain values, with the ISPmanager keys checked."""
    values: dict[str, Any] = {}
    for key, value in node.mapping().items():
        values[key] = _read_ispmanager_var(key, value) if key in ISPMANAGER_VARS else _read_free_var(key, value)
    return values


def _read_free_var(key: str, value: LocatedNode) -> Any:
    from agent.errors import InputError
    from agent.hostsettings import check_var  # imports the installer and partner settings: not at start-up

    # Stricter than a suggestion's cutoff: a free var near an ISPmanager one is refused, not just hinted at.
    hint = did_you_mean(key, ISPMANAGER_VARS, cutoff=0.75)
    if hint:
        raise value.error(f"{shown(key)} is not an ISPmanager var", hint)
    plain = value.value()
    try:
        check_var(key, plain)
    except InputError as error:
        raise value.error(str(error).removeprefix(f"var '{key}': ")) from None
    return plain


def _read_ispmanager_var(key: str, value: LocatedNode) -> str:
    text = value.string()
    if key in CHOICES:
        if text not in CHOICES[key]:
            raise value.error(f"{shown(text)} is not one of {', '.join(CHOICES[key])}")
        return text
    if key == "fqdn":
        if not is_fqdn(text):
            raise value.error(
                f"{shown(text)} is not a fully qualified domain name",
                "use dotted RFC 1123 labels, like panel.example.com",
            )
        if len(text) > MAX_FQDN_LENGTH:
            limit = f"the ISPmanager installer accepts at most {MAX_FQDN_LENGTH}"
            raise value.error(f"{shown(text)} is {len(text)} characters long", limit)
        return text
    # activation_key: never echo it, not even in an error message.
    if not text.strip():
        raise value.error("the key is empty", "set the key from the partner account, or remove the line")
    try:
        register_secret(text)  # from now on every log, report and error masks it
    except SecretRefused as problem:
        raise value.error(str(problem)) from None
    return Secret(text)
