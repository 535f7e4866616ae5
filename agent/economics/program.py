"""The partner program's rules as numbers: `program.yaml`, parsed once into a typed `Program`.

Errors name the file, the line and the key, and say what to write instead (like the inventory's).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from agent.editions import EDITIONS, PERIODS
from agent.errors import ProgramError
from agent.secrets import shown
from agent.userpath import expand_home
from agent.yamlnodes import LocatedNode, read_yaml_file

DEFAULT_PROGRAM = Path(__file__).resolve().parent.parent / "program.yaml"
PROGRAM_ENV = "ISPAGENT_PROGRAM"
CHOICES = {
    "turnover_basis": ("list", "invoiced"),
    "lowering": ("qualifying", "one_step"),
    "raise_applies_to": ("next_charge", "this_charge"),
    "renewals": ("implied", "recorded"),
}
TOP_KEYS = (
    "currency",
    "list_prices",
    "tiers",
    "minimum_turnover",
    "months_under_to_lose",
    "marketing_support_from",
    "choices",
    "invoices",
    "marketing_plan",
)
_CHOICE_NUMBERS = ("discount_under_minimum", "discount_after_status_lost", "first_month_tier")
_MISSING_HINT = "give --program, the program_file var or $ISPAGENT_PROGRAM the path of a copy of agent/program.yaml"


@dataclass(frozen=True)
class Tier:
    min_turnover: Decimal
    discount: Decimal  # percent

    def label(self) -> str:
        return f"{self.discount:g} % from {self.min_turnover:g}"


@dataclass(frozen=True)
class Program:
    source: str
    currency: str
    prices: Mapping[tuple[str, str], Decimal]
    placeholder_prices: bool
    tiers: tuple[Tier, ...]
    minimum_turnover: Decimal
    months_under_to_lose: int
    marketing_support_from: int
    turnover_basis: str = "list"
    lowering: str = "qualifying"
    raise_applies_to: str = "next_charge"
    discount_under_minimum: Decimal = Decimal(10)
    discount_after_status_lost: Decimal = Decimal(0)
    first_month_tier: int = 0
    renewals: str = "implied"
    due_days: int = 10
    track_payments: bool = False
    remind_days_before: int = 0

    def price(self, edition: str, period: str) -> Decimal:
        return self.prices[(edition, period)]

    def discount(self, tier: int, lost: bool = False) -> Decimal:
        """Percent off at tier index `tier` (-1: under the first tier's minimum)."""
        if lost:
            return self.discount_after_status_lost
        return self.tiers[tier].discount if tier >= 0 else self.discount_under_minimum

    def qualifying_tier(self, turnover: Decimal) -> int:
        """The highest tier whose minimum `turnover` reaches (-1: none)."""
        reached = -1
        for index, tier in enumerate(self.tiers):
            if turnover >= tier.min_turnover:
                reached = index
        return reached


def program_location(vars: Mapping[str, Any] | None = None, given: Path | None = None) -> Path:
    """--program, else the `program_file` var, else $ISPAGENT_PROGRAM, else the shipped agent/program.yaml."""
    chosen = given or (vars or {}).get("program_file") or os.environ.get(PROGRAM_ENV)
    return expand_home(str(chosen)) if chosen else DEFAULT_PROGRAM


def load_program(path: Path | None = None) -> Program:
    """The Program of `path` (default: the shipped one); a bad value is a one-line ProgramError."""
    root = read_yaml_file(path or DEFAULT_PROGRAM, ProgramError, what="program file", hint=_MISSING_HINT)
    return _read_program(root)


def _read_program(root: LocatedNode) -> Program:
    top = root.mapping(TOP_KEYS)
    prices, placeholder = _read_prices(_required(top, root, "list_prices"))
    tiers = _read_tiers(_required(top, root, "tiers"))
    choices = _section(top, "choices", (*CHOICES, *_CHOICE_NUMBERS))
    invoices = _section(top, "invoices", ("due_days", "track_payments"))
    plan = _section(top, "marketing_plan", ("remind_days_before",))
    first_tier = _whole(choices, "first_month_tier", 0, minimum=-1)
    if first_tier >= len(tiers):
        raise choices["first_month_tier"].error(f"there is no tier {first_tier}", f"write 0 to {len(tiers) - 1}, or -1")
    return Program(
        source=root.source,
        currency=_text(top, "currency", "EUR"),
        prices=prices,
        placeholder_prices=placeholder,
        tiers=tiers,
        minimum_turnover=_number(top, "minimum_turnover", 100),
        months_under_to_lose=_whole(top, "months_under_to_lose", 6, minimum=1),
        marketing_support_from=_whole(top, "marketing_support_from", 50, minimum=1),
        discount_under_minimum=_number(choices, "discount_under_minimum", 10, maximum=Decimal(100)),
        discount_after_status_lost=_number(choices, "discount_after_status_lost", 0, maximum=Decimal(100)),
        first_month_tier=first_tier,
        due_days=_whole(invoices, "due_days", 10),
        track_payments=_flag(invoices, "track_payments", False),
        remind_days_before=_whole(plan, "remind_days_before", 0),
        **{name: _choice(choices, name, allowed) for name, allowed in CHOICES.items()},
    )


def _read_prices(node: LocatedNode) -> tuple[dict[tuple[str, str], Decimal], bool]:
    table = node.mapping((*EDITIONS, "placeholder"))
    prices: dict[tuple[str, str], Decimal] = {}
    for edition in EDITIONS:
        periods_node = _required(table, node, edition)
        periods = periods_node.mapping(PERIODS)
        for period in PERIODS:
            prices[(edition, period)] = _read_number(_required(periods, periods_node, period))
    return prices, _flag(table, "placeholder", False)


def _read_tiers(node: LocatedNode) -> tuple[Tier, ...]:
    if not node.is_sequence or not node.node.value:
        raise node.error("expected a list of tiers", "write `- {min_turnover: 100, discount: 10}` lines")
    tiers: list[Tier] = []
    for item in node.items():
        fields = item.mapping(("min_turnover", "discount"))
        tier = Tier(
            _read_number(_required(fields, item, "min_turnover")),
            _read_number(_required(fields, item, "discount"), maximum=Decimal(100)),
        )
        if tiers and (tier.min_turnover <= tiers[-1].min_turnover or tier.discount < tiers[-1].discount):
            raise item.error(
                "tiers must rise", "list them by growing min_turnover, each discount at least the one before"
            )
        tiers.append(tier)
    return tuple(tiers)


def _section(top: dict[str, LocatedNode], name: str, allowed: tuple[str, ...]) -> dict[str, LocatedNode]:
    return top[name].mapping(allowed) if name in top else {}


def _required(entries: dict[str, LocatedNode], parent: LocatedNode, name: str) -> LocatedNode:
    if name not in entries:
        raise parent.error(f"'{name}' is missing", f"add `{name}:` (see the shipped agent/program.yaml)")
    return entries[name]


def _read_number(node: LocatedNode, maximum: Decimal | None = None) -> Decimal:
    value = node.value()
    number = _decimal(value)
    if number is None:
        raise node.error(f"{node.describe()} is not a number", "write a number such as 12.50")
    if not number.is_finite() or number < 0 or (maximum is not None and number > maximum):
        bounds = f"between 0 and {maximum}" if maximum is not None else "at least 0"
        raise node.error(f"{value} is out of range", f"write a number {bounds}")
    return number


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _number(entries: dict[str, LocatedNode], name: str, default: int, maximum: Decimal | None = None) -> Decimal:
    return _read_number(entries[name], maximum) if name in entries else Decimal(default)


def _whole(entries: dict[str, LocatedNode], name: str, default: int, minimum: int = 0) -> int:
    if name not in entries:
        return default
    value = entries[name].value()
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problem = f"{entries[name].describe()} is not a whole number of at least {minimum}"
        raise entries[name].error(problem, f"write e.g. {max(minimum, 1)}")
    return value


def _flag(entries: dict[str, LocatedNode], name: str, default: bool) -> bool:
    if name not in entries:
        return default
    value = entries[name].value()
    if not isinstance(value, bool):
        raise entries[name].error(f"{entries[name].describe()} is not true or false", "write true or false")
    return value


def _choice(entries: dict[str, LocatedNode], name: str, allowed: tuple[str, ...]) -> str:
    if name not in entries:
        return allowed[0]
    value = entries[name].string()
    if value not in allowed:
        raise entries[name].error(f"{shown(value)} is not a choice", "write one of " + ", ".join(allowed))
    return value


def _text(entries: dict[str, LocatedNode], name: str, default: str) -> str:
    return entries[name].string() if name in entries else default
