"""The ledger: ispagent's durable memory of hosts, licenses, orders in flight and activations.

A SQLite file by default (WAL, fsynced commits). It is what makes ordering exactly-once: the intent
to order is written before the order is sent, the license id right after it is known.
"""

from agent.ledger.store import (
    Activation,
    HostLocked,
    LedgerHost,
    LedgerLicense,
    LicenseLedger,
    OrderIntent,
    default_ledger_path,
    open_ledger,
)

__all__ = [
    "Activation", "HostLocked", "LedgerHost", "LedgerLicense", "LicenseLedger", "OrderIntent",
    "default_ledger_path", "open_ledger",
]
