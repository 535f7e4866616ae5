"""Reading mgrctl's text output (`key=value` lines), and the commands we send it."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.editions import EDITIONS
from agent.hoststate import StateKey

MGR_DIR = "/usr/local/mgr5"
MGRCTL = f"{MGR_DIR}/sbin/mgrctl"
LICCTL = f"{MGR_DIR}/sbin/licctl"
CORE = f"{MGR_DIR}/bin/core"


def parse_key_values(text: str) -> dict[str, str]:
    """`key=value` lines (license.info, list functions) as a dict; other lines are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def edition_of(panel_name: str | None) -> str | None:
    """lite/pro/host/business from license.info's panel_name ("ISPmanager Lite" -> "lite")."""
    name = (panel_name or "").lower()
    for edition in EDITIONS:
        if edition in name:
            return edition
    return None


@dataclass(frozen=True)
class LicenseInfoReading:
    """license.info as a probe read it on the host ({} when mgrctl is absent or failed, as the verify
    probe reads it), and the host's HOST_CHANGES count when it was read: a later step reuses it only
    while that count has not moved."""

    info: dict[str, str] = field(default_factory=dict)
    host_changes: int = 0


LICENSE_INFO: StateKey[LicenseInfoReading] = StateKey("license_info", "license.info as read (the preflight step)")
