"""The one clock ispagent reads: UTC, as the partner account bills (a month is a UTC month).

`date.today()` is the machine's local day: near midnight a control node east of UTC would price an
order at the next month's discount, or count an activation in the wrong month's turnover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def today(self) -> date:
        return self.now().date()


@dataclass(frozen=True)
class FixedClock:
    """A clock stopped at `day` (noon UTC): a forecast for another day, or a test."""

    day: date

    def now(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, 12, tzinfo=timezone.utc)

    def today(self) -> date:
        return self.day


UTC = UtcClock()
