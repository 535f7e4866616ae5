"""Licensing: a host gets its ISPmanager license exactly once, and the partner account stays billed right.

- `plan`: the decision for one host (adopt, reuse, order, or leave alone), pure;
- `view`: the facts the decision is made from, read from the ledger (and today's price);
- `ensure`: carrying it out exactly once (intent before order, look-up after uncertainty, host lock,
  order breaker);
- `fleet`: many hosts at once: the plan with totals and money, reconcile, billing findings;
- `account`: renew, delete, change IP or tariff, suspend, resume, each recording its own ledger effects.

Licensing may read `agent/economics` for prices; economics never reads licensing.
"""
