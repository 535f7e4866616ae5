"""Step parameters are read without pydantic (agent/runner/params.py), and must accept and refuse
exactly what the pydantic models they replaced did, with the same texts and the same first problem:
playbooks were written against those models, and their errors are what users have seen.

The models below are the replaced ones, kept here as the oracle. The property tests mutate the
parameters of the shipped playbooks' steps and hold the two readers side by side."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from agent.errors import StepRegistryError
from agent.runner.params import NO_VALUE, ParamsError, ReadWith, StepParams
from agent.runner.registry import load_steps
from agent.stepkit.hostfiles import check_remote_path, parse_mode

REPO = Path(__file__).resolve().parents[2]


class _Oracle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OracleShell(_Oracle):
    command: str
    creates: str | None = None
    unless: str | None = None
    changes: bool = True
    timeout: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> OracleShell:
        if not self.command.strip():
            raise ValueError("command must not be empty")
        return self


class OracleFile(_Oracle):
    src: str
    dest: str
    mode: int = 0o644

    _mode = field_validator("mode", mode="before")(parse_mode)
    _dest = field_validator("dest")(check_remote_path)


class OracleRelease(_Oracle):
    policy: Literal["park", "suspend", "delete"] = "park"


class OracleInstaller(_Oracle):
    poll_seconds: float = 1.0


class OraclePanelConfig(_Oracle):
    options_template: str = "ispmanager/ispagent.conf.j2"
    ihttpd_template: str = "ispmanager/ihttpd.conf.j2"


ORACLES: dict[str, type[_Oracle]] = {
    "shell": OracleShell,
    "upload": OracleFile,
    "template": OracleFile,
    "license_release": OracleRelease,
    "installer": OracleInstaller,
    "configure": OraclePanelConfig,
    "verify": OraclePanelConfig,
    "facts": _Oracle,
    "preflight": _Oracle,
}
STEPS = load_steps()


def read_ours(name: str, values: dict[Any, Any]) -> dict[str, Any] | tuple:
    try:
        made = STEPS[name].params.parse(values)
    except ParamsError as problem:
        value = NO_VALUE if isinstance(problem.value, dict) else problem.value  # a playbook error shows no mapping
        return ("refused", problem.loc, problem.kind, problem.message, _shown(value))
    return {field: getattr(made, field) for field in STEPS[name].params.fields()}


def read_oracle(name: str, values: dict[Any, Any]) -> dict[str, Any] | tuple:
    try:
        return ORACLES[name].model_validate(values).model_dump()
    except ValidationError as error:
        problem = error.errors()[0]
        kind = {"extra_forbidden": "unknown", "missing": "missing"}.get(problem["type"], "invalid")
        value = problem.get("input", NO_VALUE)
        shown = NO_VALUE if kind == "missing" or isinstance(value, dict) else value
        # pydantic files a key that is not a string under a string or a number made of it; ours
        # under the key itself, which the playbook's error then points at
        loc = (value,) if problem["type"] == "invalid_key" else tuple(problem["loc"])
        return ("refused", loc, kind, problem["msg"].removeprefix("Value error, "), _shown(shown))


def _shown(value: Any) -> Any:
    """A value as compared: NaN equal to NaN, NO_VALUE as a marker."""
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value)


def same(ours: Any, oracle: Any) -> bool:
    if isinstance(ours, tuple) or isinstance(oracle, tuple):
        return ours == oracle
    return ours.keys() == oracle.keys() and all(_same_value(ours[key], oracle[key]) for key in ours)


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def shipped_params() -> list[tuple[str, dict[str, Any]]]:
    """(step, parameters) of every step of every shipped playbook that sets parameters."""
    found = []
    for path in sorted((REPO / "playbooks").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text())["steps"]:
            if isinstance(entry, dict):
                ((name, params),) = ((key, value) for key, value in entry.items() if key != "name")
                found.append((name, dict(params or {})))
    return found


SHIPPED = shipped_params()
SEEDS = SHIPPED + [(name, {}) for name in ORACLES]  # and every step with no parameters
FIELD_NAMES = sorted({field for oracle in ORACLES.values() for field in oracle.model_fields})
VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["0644", "644", "0o644", "9", "07777", "010000", " 0640 ", "", " ", "yes", "off", "park", "delete"]
    ),
    st.sampled_from(["/etc/motd", "etc/motd", "/srv/x/", "/", "1.5", " 2 ", "inf", "nan", "1e3", "١٢", "hostname"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
    st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2030, 1, 1)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES + ["mdoe", "bogus", "Command"]), st.text(max_size=6), st.integers())


@st.composite
def mutated(draw) -> tuple[str, dict[Any, Any]]:
    """A shipped step's parameters (or none) with some values replaced, keys added and keys dropped."""
    name, params = draw(st.sampled_from(SEEDS))
    params = dict(params)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        change = draw(st.sampled_from(["replace", "add", "drop"]))
        if change == "replace" and params:
            params[draw(st.sampled_from(sorted(params, key=repr)))] = draw(VALUES)
        elif change == "add":
            params[draw(KEYS)] = draw(VALUES)
        elif change == "drop" and params:
            del params[draw(st.sampled_from(sorted(params, key=repr)))]
    return name, params


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_a_mutated_shipped_step_is_read_or_refused_as_the_pydantic_model_did(case):
    name, params = case
    assert same(read_ours(name, params), read_oracle(name, params)), (name, params)


@pytest.mark.parametrize(("name", "params"), SHIPPED, ids=lambda item: repr(item)[:40])
def test_every_shipped_step_is_read_as_the_pydantic_model_read_it(name, params):
    ours = read_ours(name, params)
    assert not isinstance(ours, tuple), ours
    assert same(ours, read_oracle(name, params))


@pytest.mark.parametrize(
    ("name", "params", "problem"),
    [
        ("shell", {"command": "x", "bogus": 1, "timeout": "soon"}, (("timeout",), "invalid")),  # fields before extras
        ("shell", {"bogus": 1}, (("command",), "missing")),
        ("shell", {"command": "  "}, ((), "invalid")),  # the check across fields, last
        ("upload", {"src": "a", "dest": "/x", "mode": 644}, (("mode",), "invalid")),
        ("upload", {"src": "a", "dest": "x", "mode": 644}, (("dest",), "invalid")),  # field order
        ("license_release", {"policy": "burn"}, (("policy",), "invalid")),
    ],
)
def test_the_first_problem_is_the_one_reported(name, params, problem):
    with pytest.raises(ParamsError) as refused:
        STEPS[name].params.parse(params)
    assert (refused.value.loc, refused.value.kind) == problem
    assert read_ours(name, params) == read_oracle(name, params)


def test_parameters_are_frozen_compared_by_value_and_shown():
    shell = STEPS["shell"].params
    first, second = shell.parse({"command": "hostname"}), shell.parse({"command": "hostname", "changes": True})
    assert first == second and hash(first) == hash(second) and first != shell.parse({"command": "uptime"})
    assert repr(first) == "ShellParams(command='hostname', creates=None, unless=None, changes=True, timeout=None)"
    with pytest.raises(AttributeError, match="frozen"):
        first.command = "reboot"  # type: ignore[misc]


def test_a_parameter_class_reads_only_types_it_knows_and_says_how_to_read_others():
    class Listed(StepParams):
        names: list[str]

    class Octal(StepParams):
        mode: Annotated[int, ReadWith(parse_mode)] = 0o600

    class Shadowing(StepParams):
        check: bool = True

    with pytest.raises(StepRegistryError, match=r"Listed\.names: StepParams reads str, bool, float.*ReadWith"):
        Listed.parse({"names": ["a"]})
    with pytest.raises(StepRegistryError, match=r"Shadowing\.check: a parameter cannot be named as a method"):
        Shadowing.parse({})
    assert Octal.parse({"mode": "0640"}).mode == 0o640 and Octal.parse({}).mode == 0o600


def test_a_field_type_its_module_does_not_define_is_a_one_line_plug_in_error():
    class Later(StepParams):
        when: Deadline  # noqa: F821 - defined nowhere, as a plug-in's typo would be

    with pytest.raises(
        StepRegistryError, match=r"Later: cannot read its fields' types: name 'Deadline' is not defined"
    ):
        Later.parse({})


def test_a_pydantic_validator_on_step_params_is_refused_not_silently_skipped():
    class Guarded(StepParams):
        name: str

        @field_validator("name")
        @classmethod
        def _short(cls, value: str) -> str:
            raise ValueError("never")

    with pytest.raises(StepRegistryError, match=r"Guarded\._short is a pydantic validator.*pydantic\.BaseModel"):
        Guarded.parse({"name": "x"})
