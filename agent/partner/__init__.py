"""The partner account: ISPsystem's BILLmanager-based API for ordering and managing licenses.

`settings` turns inventory vars into `PartnerSettings`, `replies` parses the API's bjson/json/xml
answers and errors, `client` makes the calls.
"""

from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus
from agent.partner.settings import PartnerSettings

__all__ = ["AccountLicense", "LicenseStatus", "PartnerClient", "PartnerSettings"]
