"""What counts as a host address, a fully qualified name and a `[user@]host[:port]` gateway string (or a
comma-separated chain of them, as ProxyJump writes it).

Addresses are parsed with `ipaddress` first. A name that only looks like a number (`127.1`,
`2130706433`, `0x7f.1`) is none of the three: resolvers and `inet_aton` read it as an IPv4 address
in a short or other base form, so it would reach a machine its text does not name, and slip past the
check that two hosts do not share an address. Every pattern must match the whole text (`fullmatch`):
`$` also matches before a final newline.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

# RFC 1123: letters, digits and inner hyphens, 1-63 characters; a digit may come first.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")  # a last label like this makes a number, not a name
_MAX_NAME_LENGTH = 253

# `[user@]host[:port]`, the form of ssh's ProxyJump; an IPv6 host is written in brackets.
_GATEWAY = re.compile(r"(?:(?P<user>[^@\s:\[\]]+)@)?(?P<host>\[[^\]\s]+\]|[^@\s:\[\]]+)(?::(?P<port>[1-9][0-9]*))?")
PORT_TEXT = re.compile(r"[1-9][0-9]{0,4}")  # a port as written: decimal, no leading zero
# An IPv4 address in its one canonical spelling (no leading zeros, as `ipaddress` requires): a
# thousand-host inventory asks about each address several times, and this answers 30 times faster.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# An IPv6 zone id: an interface name (Linux allows 15 characters) or an interface index.
_ZONE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}|[0-9]{1,10}")


def is_ip_address(text: str) -> bool:
    if _CANONICAL_IPV4.fullmatch(text):
        return True
    if ":" not in text and text.strip("0123456789."):  # neither IPv6 nor made of IPv4's characters: a name
        return False
    _, percent, zone = text.partition("%")
    if percent and not _ZONE.fullmatch(zone):  # ipaddress takes any text after %: a newline, a space, `$(id)`
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_dns_name(text: str) -> bool:
    """A hostname made of RFC 1123 labels; one label ("web1") is enough, a trailing dot is allowed.
    A name whose last label is a number is not one: see the module's doc."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > _MAX_NAME_LENGTH or looks_numeric(name):
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def looks_numeric(text: str) -> bool:
    """Whether `text` reads as a number to a resolver (`127.1`, `2130706433`, `0x7f.1`, `10.0.0.01`)."""
    name = text[:-1] if text.endswith(".") else text
    return bool(_NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]))


def canonical_address(text: str) -> str:
    """One spelling per address, to compare them: IPs compressed (an IPv4-mapped IPv6 as its IPv4), names lowercased."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text.lower().rstrip(".")
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


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
    if text.startswith("ssh://"):  # ProxyJump also takes the URI form
        text = text[len("ssh://") :]
    if ":" in text and is_ip_address(text):  # a bare IPv6 literal, which cannot carry a port
        return GatewaySpec(address=text)
    match = _GATEWAY.fullmatch(text)
    if not match:
        return None
    host = match["host"]
    if host.startswith("["):
        host = host[1:-1]
        if ":" not in host or not is_ip_address(host):
            return None
    if not is_address(host):
        return None
    if match["user"] is not None and not match["user"].isprintable():  # a zero-width or control character
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        return None
    return GatewaySpec(address=host, port=port, user=match["user"])


def parse_jump_chain(text: str) -> tuple[GatewaySpec, ...] | None:
    """ProxyJump's `hop[,hop...]`, the first hop first; None when any hop is not `[user@]host[:port]`."""
    hops = tuple(parse_gateway(part) for part in text.split(","))
    if any(hop is None for hop in hops):
        return None
    return hops  # type: ignore[return-value]  # no None left
