"""The ledger: ispagent's durable memory of hosts, licenses, orders in flight, activations and billing.

A SQLite file by default (WAL, fsynced commits), or a PostgreSQL database shared by a team
(`ledger_url`). It is what makes ordering exactly-once: the intent to order is written before the
order is sent, the license id right after it is known.

- `database.py`: the engine, transactions, migrations, close (one per ledger);
- `backend.py`: what a database must provide; `sqlite.py`, `postgresql.py`: the two there are;
- `licenses.py`: `LicenseLedger`, the licensing records; `billing.py`: its `.billing`;
- `location.py`: where the ledger is.
"""

from agent.errors import HostLocked
from agent.ledger.billing import BILLING_KINDS, BillingBook, BillingEvent, ChargeRow, OpenTerms, event_key
from agent.ledger.licenses import Activation, LedgerHost, LedgerLicense, LicenseLedger, OrderIntent
from agent.ledger.location import ledger_location
from agent.ledger.schema import SCHEMA_VERSION

__all__ = [
    "Activation",
    "BILLING_KINDS",
    "BillingBook",
    "BillingEvent",
    "ChargeRow",
    "HostLocked",
    "LedgerHost",
    "LedgerLicense",
    "LicenseLedger",
    "OpenTerms",
    "OrderIntent",
    "SCHEMA_VERSION",
    "event_key",
    "ledger_location",
]
