"""`ispagent` killed at an exact point: SIGKILL right after the Nth matching journal event is durable.

    PYTHONPATH=tests python -m harness.crashrun EVENT[:STEP][@N] run PLAYBOOK -i INVENTORY ...

For the chaos tests' kill matrix (every crash point, exactly) and the resume tests: the product
knows nothing of it; the CLI is given a JournalWatch (agent/runner/journal.py) that kills.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass


@dataclass
class KillPoint:
    """EVENT[:STEP][@N]: the Nth (default 1st) journal event of that kind (and step)."""

    event: str
    step: str | None
    nth: int
    seen: int = 0

    @classmethod
    def parse(cls, spec: str) -> KillPoint:
        where, _, nth = spec.partition("@")
        event, _, step = where.partition(":")
        return cls(event, step or None, int(nth) if nth.isdigit() else 1)

    def urgent(self, data: dict) -> bool:
        if data.get("event") != self.event or (self.step and data.get("step") != self.step):
            return False
        self.seen += 1
        return self.seen == self.nth

    def durable(self, data: dict) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash right after this event is on disk


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -m harness.crashrun EVENT[:STEP][@N] ISPAGENT-ARGS...")
    point = KillPoint.parse(sys.argv[1])
    sys.argv = ["ispagent", *sys.argv[2:]]
    from agent.cli.main import main as ispagent

    ispagent({"journal_watch": point})


if __name__ == "__main__":
    main()
