"""Licenses as the partner account sees them, parsed once from the API's replies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from agent.secrets import register_secret

# IPs that mean "no server": WHMCS parks freed licenses on 0.0.0.0.
UNASSIGNED_IPS = ("", "0.0.0.0")
FREE_LICNAME = "free.lic"


class LicenseStatus(IntEnum):
    """Status codes as Upmind maps them (the official enum is not public)."""

    UNKNOWN = 0
    ORDERED = 1
    ACTIVE = 2
    SUSPENDED = 3
    DELETED = 4
    PROCESSING = 5


@dataclass(frozen=True)
class AccountLicense:
    """One license of the account. `key` is the activation key: secret, registered when parsed."""

    id: str
    ip: str
    licname: str
    status: LicenseStatus
    pricelist: str
    edition: str | None  # from the configured pricelists; None for a tariff we do not know
    expiredate: str
    remoteid: str = ""
    key: str | None = None

    @property
    def live(self) -> bool:
        """Counts as a license for its IP: not deleted (a suspended one still holds its IP)."""
        return self.status != LicenseStatus.DELETED

    @property
    def free(self) -> bool:
        """Parked for reuse the way WHMCS parks it: on no server (0.0.0.0) or named free.lic.

        A suspended license still bound to an IP is not free: its server's owner may just be late
        paying, and taking it would switch their panel off.
        """
        return self.live and (self.ip in UNASSIGNED_IPS or self.licname == FREE_LICNAME)

    def __repr__(self) -> str:  # the key never reaches a log through a repr
        return f"AccountLicense(id={self.id!r}, ip={self.ip!r}, status={self.status.name}, edition={self.edition!r})"


def license_from_fields(fields: dict[str, Any], editions_by_pricelist: dict[str, str]) -> AccountLicense:
    """An AccountLicense from a reply's flat fields (soft.edit model, or one list elem)."""
    key = str(fields.get("lickey") or "") or None
    if key:
        register_secret(key, refuse_short=False)
    try:
        status = LicenseStatus(int(fields.get("status") or 0))
    except ValueError:
        status = LicenseStatus.UNKNOWN
    pricelist = str(fields.get("pricelist") or "")
    return AccountLicense(
        id=str(fields.get("id") or fields.get("elid") or ""),
        ip=str(fields.get("ip") or ""),
        licname=str(fields.get("licname") or fields.get("name") or ""),
        status=status,
        pricelist=pricelist,
        edition=editions_by_pricelist.get(pricelist),
        expiredate=str(fields.get("expiredate") or ""),
        remoteid=str(fields.get("remoteid") or ""),
        key=key,
    )
