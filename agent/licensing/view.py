"""The facts a license plan is made from, read once: the ledger's view of a host, and today's price.

The plan itself (`plan.py`) reads nothing; these are the reads its callers make first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from agent.ledger import LicenseLedger
from agent.licensing.plan import LedgerView

if TYPE_CHECKING:
    from agent.economics.program import Program
    from agent.economics.turnover import RolloutQuote


def ledger_view(ledger: LicenseLedger, host_name: str) -> LedgerView:
    """What the ledger says about `host_name`: its license, its remoteid, the licenses other hosts hold."""
    held = ledger.license_of_host(host_name)
    known = next((h for h in ledger.hosts() if h.name == host_name), None)
    taken = frozenset(lic.id for lic in ledger.licenses() if lic.host_name not in (None, host_name))
    return LedgerView(held.id if held else None, known.remoteid if known else None, taken)


def price_today(ledger: LicenseLedger, program: Program, today: date) -> Callable[[str, str], RolloutQuote]:
    """edition, period -> what ordering one such license today costs, at this month's tier (read when called)."""
    # Imported here: ensuring a license needs ledger_view, not the program's money rules.
    from agent.economics.turnover import quote_rollout

    return lambda edition, period: quote_rollout(ledger, program, [(edition, period)], today)
