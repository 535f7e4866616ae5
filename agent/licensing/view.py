"""The facts a license plan is made from, read once: the ledger's view of a host, and today's price.

The plan itself (`plan.py`) reads nothing; these are the reads its callers make first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.ledger import LicenseLedger
from agent.licensing.plan import LedgerView

if TYPE_CHECKING:
    from agent.economics.program import Program
    from agent.economics.turnover import MonthSoFar, RolloutQuote
    from agent.partner.model import AccountLicense


def ledger_view(ledger: LicenseLedger, host_name: str) -> LedgerView:
    """What the ledger says about `host_name`: its license and its remoteid (rows about this host only).

    Which licenses other hosts hold is asked per plan, and only of the licenses the plan could
    reuse (`with_taken`): reading every host and license of the ledger for each host made a run
    cost its hosts times the ledger's size."""
    held = ledger.license_of_host(host_name)
    known = ledger.known_host(host_name)
    return LedgerView(held.id if held else None, known.remoteid if known else None)


def with_taken(
    ledger: LicenseLedger, known: LedgerView, host_name: str, account: Iterable[AccountLicense]
) -> LedgerView:
    """`known`, with those of `account`'s free licenses that the ledger gives to other hosts: the only
    licenses `plan_for_host` checks against `taken` (a free license is reused only if no host holds it)."""
    free = [lic.id for lic in account if lic.free]
    return replace(known, taken=ledger.held_elsewhere(free, host_name)) if free else known


def price_today(program: Program, month: Callable[[], MonthSoFar]) -> Callable[[str, str], RolloutQuote]:
    """edition, period -> what ordering one such license today costs, at this month's tier. `month`
    gives this month's billing so far (it reads the ledger's whole history: a run reads it once for
    all its hosts), asked only when a price is."""
    # Imported here: ensuring a license needs ledger_view, not the program's money rules.
    from agent.economics.turnover import quote_orders

    return lambda edition, period: quote_orders(program, month(), [(edition, period)])
