"""Values read as pydantic's lax mode reads them, with its texts, without importing pydantic.

Inventories, vars and playbooks were written against pydantic models, whose lax mode takes "yes" for
true and "1.5" for 1.5 and refuses a list where a string belongs, in texts users have seen. The
install settings and every step's parameters are read by these instead: importing pydantic and
building the models' validators cost a run about 55 ms of CPU, a quarter of what a run of a small
job cost. tests/unit/test_installer_settings.py and test_step_params.py hold them side by side with
pydantic models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
_FALSE = frozenset(("0", "off", "f", "false", "n", "no"))


def string(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise ValueError("Input should be a valid string, unable to parse raw data as a unicode string") from None
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return str(value)


def optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode(errors="replace")  # not a word either way: "unable to interpret"
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("Input should be a valid boolean, unable to interpret input")
    number = value if isinstance(value, (int, float)) else None
    if number in (0, 1):
        return number == 1
    if isinstance(number, int) and -(2**63) <= number < 2**63 or isinstance(number, float) and number.is_integer():
        raise ValueError("Input should be a valid boolean, unable to interpret input")
    raise ValueError("Input should be a valid boolean")


def number(value: Any) -> float:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode(errors="replace")
    if isinstance(value, str):
        try:
            if not value.isascii():  # float() reads other scripts' digits; the model did not
                raise ValueError
            return float(value.strip())
        except ValueError:
            raise ValueError("Input should be a valid number, unable to parse string as a number") from None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("Input should be a valid number") from None
    raise ValueError("Input should be a valid number")


def choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    quoted = [f"'{choice}'" for choice in choices]
    expected = (
        f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"
        if len(quoted) > 1
        else f"Input should be {quoted[0]}"
    )

    def read(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return str(value)
        raise ValueError(expected)

    return read
