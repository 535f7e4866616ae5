"""What the emulated account allows and what it costs: its errors, value checks, tariffs and prices.

What is not public and so invented here, each in one place: the unpaid/insufficient-funds and
too-long/bad-characters errors' types and wording (`_ERRORS`), the field limits (`FIELD_LIMITS`),
and the prices, which are the shipped program.yaml's list prices (placeholders themselves, the
same the ledger and `plan` quote), so what the lab charges is what ispagent expects to be charged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from ipaddress import IPv4Address
from typing import Any

from agent.economics.program import load_program
from agent.editions import EDITIONS
from agent.partner.settings import DEFAULT_PRICELISTS, TRIAL_PRICELIST

# Status codes as Upmind maps them (facts §4.4); agent.partner.model.LicenseStatus reads the same.
STATUS_ORDERED, STATUS_ACTIVE, STATUS_SUSPENDED, STATUS_DELETED, STATUS_PROCESSING = 1, 2, 3, 4, 5
LIVE_STATUSES = (STATUS_ORDERED, STATUS_ACTIVE, STATUS_PROCESSING)  # a license its server can fetch
PERIODS = (1, 12, -100)  # months; -100 is a trial (facts §4.2)
FIELD_LIMITS = {"licname": 255, "remoteid": 255, "ip": 45, "authinfo": 512, "func": 64, "out": 16}
DEFAULT_FIELD_LIMIT = 4096
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_ERRORS = {
    "auth": ("auth", "", "Invalid username or password"),
    "unpaid": ("payment", "", "Ordering is blocked: the account has an unpaid invoice"),
    "funds": ("payment", "", "Insufficient funds on the account balance"),
    "missed": ("missed", "elid", "Object not found"),
    "ip": ("value", "ip", "Invalid IP address"),
    "ip_taken": ("value", "ip", "This IP address already has a license"),
    "pricelist": ("value", "pricelist", "Unknown tariff"),
    "period": ("value", "period", "Invalid period"),
    "func": ("missed", "func", "Unknown function"),
    "too_long": ("value", "{field}", "The value of '{field}' is too long: at most {limit} characters"),
    "characters": ("value", "{field}", "The value of '{field}' contains characters that are not allowed"),
}


class ApiError(Exception):
    """An error the API reports in its reply body (HTTP 200)."""

    def __init__(self, name: str, **details: Any) -> None:
        super().__init__(name)
        kind, target, message = _ERRORS[name]
        self.kind, self.target, self.message = kind, target.format(**details), message.format(**details)


@dataclass(frozen=True)
class Tariff:
    """One pricelist of the account: the panel it sells and its list prices, in cents."""

    name: str
    monthly_cents: int
    annual_cents: int

    def price(self, period: int) -> int:
        """The cents `period` months cost; a trial (-100) costs nothing."""
        if period == 12:
            return self.annual_cents
        return self.monthly_cents * max(period, 0)


def _tariffs() -> dict[str, Tariff]:
    """The tariff ids ispagent orders (agent.partner.settings) at the program's list prices, and the trial."""
    program = load_program()

    def cents(edition: str, period: str) -> int:
        return int(program.price(edition, period) * Decimal(100))

    tariffs = {
        DEFAULT_PRICELISTS[edition]: Tariff(
            f"ISPmanager {edition.capitalize()}", cents(edition, "monthly"), cents(edition, "annual")
        )
        for edition in EDITIONS
    }
    return {**tariffs, TRIAL_PRICELIST: Tariff("ISPmanager Trial", 0, 0)}


TARIFFS = _tariffs()


def tariff(pricelist: str | None) -> Tariff:
    if pricelist not in TARIFFS:
        raise ApiError("pricelist")
    return TARIFFS[pricelist]


def expiry(start: date, period: int) -> date:
    return start + timedelta(days=30 * max(period, 0) if period != 12 else 365)


def period_of(params: dict[str, str]) -> int:
    try:
        period = int(params.get("period", ""))
    except ValueError:
        raise ApiError("period") from None
    if period not in PERIODS:
        raise ApiError("period")
    return period


def check_ip(text: str, allow_unassigned: bool = False) -> None:
    """Refuse what is not an IPv4 address; 0.0.0.0 ("no server", where WHMCS parks a license) only when moving."""
    try:
        address = IPv4Address(text)
    except ValueError:
        raise ApiError("ip") from None
    if address == IPv4Address("0.0.0.0") and not allow_unassigned:
        raise ApiError("ip")


def check_values(params: dict[str, str]) -> None:
    """Refuse a too long value or one with control characters, as the API refuses a bad value."""
    for name, value in params.items():
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        if len(value) > limit:
            raise ApiError("too_long", field=name[:64], limit=limit)
        if _CONTROL.search(value):
            raise ApiError("characters", field=name[:64])


def shown_status(status: int, key_ready: bool) -> int:
    """The status a read shows. A paid order is "processing" until its key exists and "active" from
    then on, whether or not its server fetched the license yet: what the real clients wait for is
    the key (WHMCS polls soft.edit until lickey is set, Upmind reads it at once, facts §8), and an
    account does not hold a license whose key it hands out as still "ordered"."""
    if status != STATUS_ORDERED:
        return status
    return STATUS_ACTIVE if key_ready else STATUS_PROCESSING
