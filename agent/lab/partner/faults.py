"""The lab's fault profiles for the partner account: what an unreliable real API does, on demand.

Read from STATE_DIR/faults.json on every call (a user or a test rewrites it; `POST /admin/faults`
writes it too):

    {"latency": [0.0, 0.05],   # seconds before handling, uniform in [min, max]
     "error_rate": 0.3,        # HTTP 503 before anything happens
     "reset_rate": 0.1,        # connection reset before anything happens
     "drop_rate": 0.1,         # commit-then-drop: the call is done, the answer never arrives
     "key_delay": 0.2,         # seconds before an ordered license gets its activation key
     "rate_limit_rate": 0.2,   # HTTP 429 with Retry-After before anything happens
     "retry_after": 1,         # the Retry-After of those answers, in seconds
     "functions": ["soft.order.param"]}   # faults only for these functions (default: all)
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from agent.lab.partner.files import write_private


class Refusal(Enum):
    """What a call gets instead of its answer, before it is handled."""

    ERROR = "error"  # HTTP 503
    RESET = "reset"  # connection reset
    RATE_LIMIT = "429"  # HTTP 429 with Retry-After


@dataclass(frozen=True)
class Faults:
    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    reset_rate: float = 0.0
    drop_rate: float = 0.0
    key_delay: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    functions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Faults:
        latency = data.get("latency", 0.0)
        if not isinstance(latency, (list, tuple)):
            latency = (latency, latency)
        return cls(
            latency=(float(latency[0]), float(latency[1])),
            error_rate=float(data.get("error_rate", 0.0)),
            reset_rate=float(data.get("reset_rate", 0.0)),
            drop_rate=float(data.get("drop_rate", 0.0)),
            key_delay=float(data.get("key_delay", 0.0)),
            rate_limit_rate=float(data.get("rate_limit_rate", 0.0)),
            retry_after=int(data.get("retry_after", 1)),
            functions=tuple(data.get("functions") or ()),
        )

    def applies_to(self, func: str) -> bool:
        return not self.functions or func in self.functions

    def before_call(self, func: str) -> Refusal | None:
        """Wait the latency, then draw the refusal `func` gets instead of being handled, if any."""
        if not self.applies_to(func):
            return None
        low, high = self.latency
        if high > 0:
            time.sleep(random.uniform(low, high))
        for refusal, rate in (
            (Refusal.ERROR, self.error_rate),
            (Refusal.RESET, self.reset_rate),
            (Refusal.RATE_LIMIT, self.rate_limit_rate),
        ):
            if random.random() < rate:
                return refusal
        return None

    def drops_answer(self, func: str) -> bool:
        """Whether the answer of a call done is lost (the client sees a reset)."""
        return self.applies_to(func) and random.random() < self.drop_rate


class FaultSettings:
    """faults.json, read again whenever it changed (so another process can switch faults on)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._faults = Faults()
        self._stamp: int | None = None

    def set(self, **faults: object) -> None:
        write_private(self.path, json.dumps(faults))

    def current(self) -> Faults:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return Faults()
        if stamp != self._stamp:
            try:
                self._faults = Faults.from_json(json.loads(self.path.read_text() or "{}"))
            except (ValueError, OSError):
                self._faults = Faults()
            self._stamp = stamp
        return self._faults
