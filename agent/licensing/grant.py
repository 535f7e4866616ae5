"""What the license step hands later steps (installer, verify, report): the host's license and its
activation key, under the state key LICENSE.

Apart from agent/licensing/ensure.py so a step that only reads it does not import the ledger and the
partner client with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.hoststate import StateKey
from agent.secrets import register_secret


@dataclass(frozen=True)
class LicenseGrant:
    """The license a host gets; `key` (the activation key) is secret and registered as such."""

    id: str
    key: str | None = field(repr=False)
    edition: str
    period: str
    action: str

    def __post_init__(self) -> None:
        if self.key:
            register_secret(self.key, refuse_short=False)

    def report(self) -> dict[str, str]:
        return {"id": self.id, "edition": self.edition, "period": self.period, "action": self.action}


LICENSE: StateKey[LicenseGrant] = StateKey("license", "the host's license and activation key (the license step)")
