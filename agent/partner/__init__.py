"""The partner account: ISPsystem's BILLmanager-based API for ordering and managing licenses.

`operations` declares each API operation once (function, read/write, parameters, reply shape),
`settings` turns inventory vars into `PartnerSettings`, `replies` parses the API's bjson/json/xml
answers and errors, `client` makes the calls the table describes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.partner.client import PartnerClient
    from agent.partner.model import AccountLicense, LicenseStatus
    from agent.partner.settings import PartnerSettings

__all__ = ["AccountLicense", "LicenseStatus", "PartnerClient", "PartnerSettings"]

# Reading partner vars from an inventory must not import the HTTP client (httpx, rich): names are
# resolved from their modules on first use.
_HOMES = {"PartnerClient": "client", "AccountLicense": "model", "LicenseStatus": "model", "PartnerSettings": "settings"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'agent.partner' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.partner.{_HOMES[name]}"), name)
