"""The ledger: ispagent's durable memory of hosts, licenses, orders in flight, activations and billing.

A SQLite file by default (WAL, fsynced commits), or a PostgreSQL database shared by a team
(`ledger_url`). It is what makes ordering exactly-once: the intent to order is written before the
order is sent, the license id right after it is known.
"""

from agent.errors import HostLocked
from agent.ledger.schema import SCHEMA_VERSION
from agent.ledger.store import (
    Activation,
    BillingEvent,
    ChargeRow,
    LedgerHost,
    LedgerLicense,
    LicenseLedger,
    OpenTerms,
    OrderIntent,
    default_ledger_path,
    ledger_location,
    open_ledger,
)

__all__ = [
    "Activation", "BillingEvent", "ChargeRow", "HostLocked", "LedgerHost", "LedgerLicense", "LicenseLedger", "OpenTerms",
    "OrderIntent", "SCHEMA_VERSION", "default_ledger_path", "ledger_location", "open_ledger",
]
