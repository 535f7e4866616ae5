"""The partner program's rules as numbers: `program.yaml`, parsed once into a typed `Program`.

Errors name the file, the line and the key, and say what to write instead (like the inventory's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from agent.editions import EDITIONS, PERIODS
from agent.errors import ProgramError, did_you_mean
from agent.yamlsource import Key, YamlSource, read_yaml

DEFAULT_PROGRAM = Path(__file__).resolve().parent.parent / "program.yaml"
PROGRAM_ENV = "ISPAGENT_PROGRAM"
CHOICES = {
    "turnover_basis": ("list", "invoiced"),
    "lowering": ("qualifying", "one_step"),
    "raise_applies_to": ("next_charge", "this_charge"),
    "renewals": ("implied", "recorded"),
}
TOP_KEYS = ("currency", "list_prices", "tiers", "minimum_turnover", "months_under_to_lose", "marketing_support_from",
            "choices", "invoices", "marketing_plan")


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
    return Path(str(chosen)).expanduser() if chosen else DEFAULT_PROGRAM


def load_program(path: Path | None = None) -> Program:
    """The Program of `path` (default: the shipped one); a bad value is a one-line ProgramError."""
    source = read_yaml(path or DEFAULT_PROGRAM, ProgramError)
    return _Reader(source).program()


class _Reader:
    def __init__(self, source: YamlSource) -> None:
        self.source = source

    def fail(self, key: Key, problem: str, fix: str) -> ProgramError:
        return ProgramError(f"{self.source.where(key)}: {problem}; {fix}")

    def mapping(self, key: Key, value: Any, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping", "write `key: value` lines under it")
        for name in value:
            if name not in allowed:
                fix = did_you_mean(name, allowed) or "expected one of " + ", ".join(allowed)
                raise self.fail(key + (str(name),), "unknown key", fix)
        return value

    def number(self, key: Key, value: Any, minimum: Decimal = Decimal(0), maximum: Decimal | None = None) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.fail(key, f"'{value}' is not a number", "write a number such as 12.50")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, f"'{value}' is not a number", "write a number such as 12.50") from None
        if not number.is_finite() or number < minimum or (maximum is not None and number > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.fail(key, f"{value} is out of range", f"write a number {bounds}")
        return number

    def integer(self, key: Key, value: Any, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"'{value}' is not a whole number of at least {minimum}", f"write e.g. {max(minimum, 1)}")
        return value

    def required(self, data: dict, key: Key, name: str) -> Any:
        if name not in data:
            raise self.fail(key, f"'{name}' is missing", f"add `{name}:` (see the shipped agent/program.yaml)")
        return data[name]

    def program(self) -> Program:
        data = self.mapping((), self.source.data if self.source.data is not None else {}, TOP_KEYS)
        prices, placeholder = self.prices(self.required(data, (), "list_prices"))
        tiers = self.tiers(self.required(data, (), "tiers"))
        choices = self.mapping(("choices",), data.get("choices") or {}, tuple(CHOICES) + (
            "discount_under_minimum", "discount_after_status_lost", "first_month_tier"))
        invoices = self.mapping(("invoices",), data.get("invoices") or {}, ("due_days", "track_payments"))
        plan = self.mapping(("marketing_plan",), data.get("marketing_plan") or {}, ("remind_days_before",))
        picked = {}
        for name, allowed in CHOICES.items():
            value = choices.get(name, allowed[0])
            if value not in allowed:
                raise self.fail(("choices", name), f"'{value}' is not a choice", "write one of " + ", ".join(allowed))
            picked[name] = value
        first_tier = self.integer(("choices", "first_month_tier"), choices.get("first_month_tier", 0), minimum=-1)
        if first_tier >= len(tiers):
            raise self.fail(("choices", "first_month_tier"), f"there is no tier {first_tier}", f"write 0 to {len(tiers) - 1}, or -1")
        track = invoices.get("track_payments", False)
        if not isinstance(track, bool):
            raise self.fail(("invoices", "track_payments"), f"'{track}' is not true or false", "write true or false")
        return Program(
            source=self.source.shown_as,
            currency=str(data.get("currency", "EUR")),
            prices=prices,
            placeholder_prices=placeholder,
            tiers=tiers,
            minimum_turnover=self.number(("minimum_turnover",), data.get("minimum_turnover", 100)),
            months_under_to_lose=self.integer(("months_under_to_lose",), data.get("months_under_to_lose", 6), minimum=1),
            marketing_support_from=self.integer(("marketing_support_from",), data.get("marketing_support_from", 50), minimum=1),
            discount_under_minimum=self.number(("choices", "discount_under_minimum"), choices.get("discount_under_minimum", 10),
                                               maximum=Decimal(100)),
            discount_after_status_lost=self.number(("choices", "discount_after_status_lost"),
                                                   choices.get("discount_after_status_lost", 0), maximum=Decimal(100)),
            first_month_tier=first_tier,
            due_days=self.integer(("invoices", "due_days"), invoices.get("due_days", 10)),
            track_payments=track,
            remind_days_before=self.integer(("marketing_plan", "remind_days_before"), plan.get("remind_days_before", 0)),
            **picked,
        )

    def prices(self, value: Any) -> tuple[dict[tuple[str, str], Decimal], bool]:
        key: Key = ("list_prices",)
        table = self.mapping(key, value, EDITIONS + ("placeholder",))
        prices = {}
        for edition in EDITIONS:
            periods = self.mapping(key + (edition,), self.required(table, key, edition), PERIODS)
            for period in PERIODS:
                prices[(edition, period)] = self.number(key + (edition, period), self.required(periods, key + (edition,), period))
        placeholder = table.get("placeholder", False)
        if not isinstance(placeholder, bool):
            raise self.fail(key + ("placeholder",), f"'{placeholder}' is not true or false", "write true or false")
        return prices, placeholder

    def tiers(self, value: Any) -> tuple[Tier, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(("tiers",), "expected a list of tiers", "write `- {min_turnover: 100, discount: 10}` lines")
        tiers: list[Tier] = []
        for index, item in enumerate(value):
            key: Key = ("tiers", index)
            item = self.mapping(key, item, ("min_turnover", "discount"))
            tier = Tier(self.number(key + ("min_turnover",), self.required(item, key, "min_turnover")),
                        self.number(key + ("discount",), self.required(item, key, "discount"), maximum=Decimal(100)))
            if tiers and (tier.min_turnover <= tiers[-1].min_turnover or tier.discount < tiers[-1].discount):
                raise self.fail(key, "tiers must rise", "list them by growing min_turnover, each discount at least the one before")
            tiers.append(tier)
        return tuple(tiers)
