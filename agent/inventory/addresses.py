"""What counts as a host address, a fully qualified name and a `[user@]host[:port]` gateway string."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

# RFC 1123: letters, digits and inner hyphens, 1-63 characters; a digit may come first.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAX_NAME_LENGTH = 253

# `[user@]host[:port]`, the form of ssh's ProxyJump; an IPv6 host is written in brackets.
_GATEWAY = re.compile(r"^(?:(?P<user>[^@\s:\[\]]+)@)?(?P<host>\[[^\]\s]+\]|[^@\s:\[\]]+)(?::(?P<port>[0-9]+))?$")


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_dns_name(text: str) -> bool:
    """A hostname made of RFC 1123 labels; one label ("web1") is enough, a trailing dot is allowed."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > _MAX_NAME_LENGTH:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def is_address(text: str) -> bool:
    return is_ip_address(text) or is_dns_name(text)


def is_fqdn(text: str) -> bool:
    """A fully qualified name: RFC 1123 labels, at least one dot, and not an IP address."""
    name = text[:-1] if text.endswith(".") else text
    return "." in name and is_dns_name(name) and not is_ip_address(name)


@dataclass(frozen=True)
class GatewaySpec:
    """A gateway as written (string or mapping); unset parts are filled in for the host it serves."""

    address: str
    port: int | None = None
    user: str | None = None
    identity_file: Path | None = None


def parse_gateway(text: str) -> GatewaySpec | None:
    """`[user@]host[:port]` (IPv6 as `[2001:db8::1]`), or None when the text is not of that form."""
    text = text.strip()
    if text.startswith("ssh://"):  # ProxyJump also takes the URI form
        text = text[len("ssh://") :]
    if ":" in text and is_ip_address(text):  # a bare IPv6 literal, which cannot carry a port
        return GatewaySpec(address=text)
    match = _GATEWAY.match(text)
    if not match:
        return None
    host = match["host"]
    if host.startswith("["):
        host = host[1:-1]
        if ":" not in host or not is_ip_address(host):
            return None
    if not is_address(host):
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        return None
    return GatewaySpec(address=host, port=port, user=match["user"])
