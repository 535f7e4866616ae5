"""Rolling batches and the fail threshold: pure functions of the host list and the outcomes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from agent.errors import InputError
from agent.secrets import shown

T = TypeVar("T")


def parse_batch_size(text: str | None, total: int) -> int:
    """`--batch-size`: a host count (`10`) or a share of the selected hosts (`25%`, rounded up)."""
    if text is None or total == 0:
        return max(total, 1)
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return max(1, math.ceil(total * percent / 100))
        count = int(value)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise InputError(f"--batch-size: {shown(text)} is neither a host count (10) nor a percentage (25%)") from None


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def failed_percent(failed: int, done: int) -> float:
    return 100.0 * failed / done if done else 0.0


def threshold_exceeded(failed: int, done: int, max_fail_percent: float | None) -> bool:
    """True when more than `max_fail_percent` of the hosts run so far failed or were unreachable."""
    if max_fail_percent is None:
        return False
    return failed_percent(failed, done) > max_fail_percent
