"""Step cases as data: one YAML file per case in tests/data/steps/<step>/, read into a StepCase.

A case gives what a step starts from (params, vars, facts, host state, the partner account and
the ledger), what the host answers (`remote`: the commands and uploads expected, in order, with
their output) and what must come out (`expect`). tests/data/steps/README.md describes the format.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from agent.hoststate import HostState
from agent.installer.state import INSTALL
from agent.inventory.model import Endpoint, Host
from agent.lab.partner import LAB_USER, TARIFFS, PartnerEmulator
from agent.ledger import BillingEvent, LicenseLedger
from agent.licensing.grant import LICENSE, LicenseGrant
from agent.panel.config import CONFIGURE_PENDING
from agent.panel.hostprobe import PREFLIGHT, preflight_of
from agent.panel.preflight_rules import HostFacts, evaluate
from agent.partner.settings import DEFAULT_PRICELISTS, PERIOD_MONTHS
from agent.transport.quoting import command_line
from agent.transport.replay import ExpectedCommand, ExpectedUpload

DATA = Path(__file__).parent / "data" / "steps"
REPO = Path(__file__).resolve().parent.parent

# A host that passes every preflight rule; a case's `state.preflight` overrides some of its facts.
GOOD_HOST = HostFacts(
    os_id="debian",
    os_version="12",
    os_codename="bookworm",
    arch="x86_64",
    memory_mb=2048,
    hostname="h1.lab.example",
    primary_ipv4="198.18.0.2",
    repository_reachable=True,
)
STATUS_NAMES = {1: "ordered", 2: "active", 3: "suspended", 4: "deleted", 5: "processing"}
STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}
LEDGER_TABLES = ("hosts", "licenses", "order_intents", "activations", "events", "billing_events")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(_Model):
    name: str = "h1"
    address: str = "198.18.0.2"
    port: int = 22
    user: str = "root"
    sudo: bool = False

    def host(self, vars: dict) -> Host:
        return Host(self.name, Endpoint(self.address, self.port, self.user), sudo=self.sudo, vars=vars)


class Remote(_Model):
    """One item of `remote`: a command (command | argv | match | contains) with its answer, or an upload (put)."""

    command: str | None = None
    argv: list[str] | None = None  # the exact arguments: the line sent must be them, each quoted once
    match: str | None = None
    contains: str | None = None
    stdout: str = ""
    stderr: str = ""
    exit: int = 0
    failure: Literal["timeout", "connection_lost"] | None = None
    timeout: float | None = None
    stdin: str | None = None  # what a command must be sent on its stdin
    stdin_file: str | None = None  # the same, as a file of the step's files/ directory
    stdin_sha256: str | None = None  # the same, by its SHA-256
    put: str | None = None
    mode: str | None = None  # octal, like the steps' params
    content: str | None = None
    content_file: str | None = None  # a file of the step's files/ directory
    sha256: str | None = None
    make_parents: bool | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k in ("command", "argv", "match", "contains", "put") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a remote item needs exactly one of command, argv, match, contains, put (got {kinds or 'none'})"
            )
        return self

    def expected(self, files: Path) -> ExpectedCommand | ExpectedUpload:
        if self.put is None:
            command = command_line(self.argv) if self.argv is not None else self.command
            stdin = self.stdin.encode() if self.stdin is not None else None
            if self.stdin_file:
                stdin = (files / self.stdin_file).read_bytes()
            return ExpectedCommand(
                command,
                self.match,
                self.contains,
                self.stdout,
                self.stderr,
                self.exit,
                self.failure,
                self.timeout,
                stdin,
                self.stdin_sha256,
            )
        content = self.content.encode() if self.content is not None else None
        if self.content_file:
            content = (files / self.content_file).read_bytes()
        return ExpectedUpload(
            self.put, int(self.mode, 8) if self.mode else None, content, self.sha256, self.make_parents, self.error
        )


class AccountLicenseSeed(_Model):
    edition: Literal["lite", "pro", "host", "business"] = "lite"
    period: Literal["monthly", "annual"] = "monthly"
    ip: str
    licname: str = ""
    remoteid: str = ""
    status: Literal["ordered", "active", "suspended", "deleted"] = "active"


class AccountSeed(_Model):
    """The partner account before the step: licenses get ids 3100001, 3100002... in this order."""

    licenses: list[AccountLicenseSeed] = []
    unpaid: bool = False
    faults: dict[str, Any] = {}


class LedgerHostSeed(_Model):
    name: str
    address: str
    fqdn: str | None = None
    remoteid: str | None = None  # default: a random one, as the ledger makes it


class LedgerLicenseSeed(_Model):
    id: str
    host: str | None
    ip: str
    edition: str = "lite"
    period: str = "monthly"
    action: str = "ordered"


class LedgerIntentSeed(_Model):
    """An order intent left by a run that crashed after sending the order."""

    host: str
    ip: str
    edition: str = "lite"
    period: str = "monthly"


class LedgerActivationSeed(_Model):
    """An activation queued by an earlier run's report step, confirmed by the account or not."""

    license: str
    host: str
    ip: str
    state: Literal["pending", "confirmed"] = "pending"


class LedgerBillingSeed(_Model):
    kind: Literal["activation", "renewal", "deactivation", "payment"]
    license: str
    edition: str = "lite"
    period: str = "monthly"
    on: str = "2026-01-05"


class LedgerSeed(_Model):
    hosts: list[LedgerHostSeed] = []
    licenses: list[LedgerLicenseSeed] = []
    order_intents: list[LedgerIntentSeed] = []
    activations: list[LedgerActivationSeed] = []
    billing: list[LedgerBillingSeed] = []  # billing events already recorded (e.g. the license's activation)


class GrantSeed(_Model):
    id: str
    key: str | None = None
    edition: str = "lite"
    period: str = "monthly"
    action: str = "ordered"


class StateSeed(_Model):
    preflight: dict[str, Any] | None = None  # HostFacts fields over GOOD_HOST
    license: GrantSeed | None = None
    install: Literal["installed", "would install"] | None = None
    configure_pending: list[str] = []


class Expect(_Model):
    status: Literal["ok", "changed", "skipped", "failed"] | None = None
    raises: str | None = None  # an agent.errors class the step raises (the runner makes it "failed")
    message: str | None = None  # a substring of the result's message (or the exception's)
    message_excludes: list[str] = []
    data: dict[str, Any] | None = None
    facts: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    log: list[str] = []
    log_excludes: list[str] = []
    partner_calls: dict[str, int] | None = None  # every call the account got, by function
    account: list[dict[str, Any]] | None = None  # the account's licenses afterwards
    ledger: dict[str, list[Any]] | None = None  # table -> rows (events, billing_events: kinds)

    @model_validator(mode="after")
    def _outcome(self):
        if (self.status is None) == (self.raises is None):
            raise ValueError("expect needs exactly one of status, raises")
        unknown = set(self.ledger or {}) - set(LEDGER_TABLES)
        if unknown:
            raise ValueError(f"expect.ledger: unknown tables {sorted(unknown)}; known: {', '.join(LEDGER_TABLES)}")
        return self


class StepCase(_Model):
    description: str
    params: dict[str, Any] = {}
    host: HostSpec = HostSpec()
    vars_from: str | None = None  # a playbook whose vars are the defaults, e.g. playbooks/install.yaml
    vars: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    dry_run: bool = False
    state: StateSeed = StateSeed()
    account: AccountSeed | None = None
    ledger: LedgerSeed | None = None
    remote: list[Remote] = []
    expect: Expect


def load_case(path: Path) -> StepCase:
    try:
        return StepCase.model_validate(yaml.safe_load(path.read_text()))
    except ValueError as error:
        raise AssertionError(f"{path.relative_to(REPO)}: {error}") from None


def case_vars(case: StepCase, served: str) -> dict[str, Any]:
    """The host's vars: the playbook's, then the case's; `{served}` is the step's files/ over HTTP."""
    defaults = {}
    if case.vars_from:
        defaults = yaml.safe_load((REPO / case.vars_from).read_text()).get("vars") or {}
    return _substitute({**defaults, **case.vars}, "{served}", served)


def _substitute(value: Any, placeholder: str, text: str) -> Any:
    if isinstance(value, str):
        return value.replace(placeholder, text)
    if isinstance(value, dict):
        return {key: _substitute(item, placeholder, text) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, placeholder, text) for item in value]
    return value


def host_state(seed: StateSeed, install_settings) -> HostState:
    state = HostState({CONFIGURE_PENDING: tuple(seed.configure_pending)})
    if seed.install is not None:
        state.set(INSTALL, seed.install)
    if seed.preflight is not None:
        overrides = dict(seed.preflight)
        if "ports_in_use" in overrides:
            overrides["ports_in_use"] = tuple(overrides["ports_in_use"])
        facts = dataclasses.replace(GOOD_HOST, **overrides)
        state.set(PREFLIGHT, preflight_of(facts, evaluate(facts, install_settings)))
    if seed.license is not None:
        state.set(LICENSE, LicenseGrant(**seed.license.model_dump()))
    return state


def seed_account(emulator: PartnerEmulator, seed: AccountSeed) -> None:
    for lic in seed.licenses:
        pricelist = DEFAULT_PRICELISTS[lic.edition]
        elid = emulator.store.order(
            LAB_USER, pricelist, PERIOD_MONTHS[lic.period], lic.ip, lic.licname, lic.remoteid, 0.0
        )
        if lic.status != "ordered":
            emulator.store.update_license(elid, status=STATUS_CODES[lic.status])
    if seed.unpaid:
        emulator.store.update_account(LAB_USER, unpaid=1)
    if seed.faults:
        emulator.set_faults(**seed.faults)


def seed_ledger(path: Path, seed: LedgerSeed) -> None:
    ledger = LicenseLedger(path)
    try:
        hosts = {}
        for item in seed.hosts:
            hosts[item.name] = ledger.host(item.name, item.address, item.fqdn)
        db = sqlite3.connect(path)  # the ledger makes remoteids at random; a case may need a known one
        with db:
            for item in seed.hosts:
                if item.remoteid:
                    db.execute("UPDATE hosts SET remoteid=? WHERE name=?", (item.remoteid, item.name))
        db.close()
        hosts = {name: next(h for h in ledger.hosts() if h.name == name) for name in hosts}
        for lic in seed.licenses:
            ledger.record_license(lic.id, lic.host, lic.ip, lic.edition, lic.period, lic.action)
        for intent in seed.order_intents:
            ledger.begin_order(hosts[intent.host], intent.ip, intent.edition, intent.period)
        for item in seed.activations:
            ledger.queue_activation(item.license, hosts[item.host], item.ip, "lite", "monthly")
            if item.state == "confirmed":
                queued = ledger.activations(item.host, state="pending")
                ledger.confirm_activation(next(a for a in queued if a.license_id == item.license))
        for item in seed.billing:
            ledger.billing.record(BillingEvent(item.on, item.kind, item.license, item.edition, item.period))
    finally:
        ledger.engine.dispose()


def ledger_rows(path: Path, table: str) -> list[Any]:
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    db.close()
    if table in ("events", "billing_events"):
        return [row["kind"] for row in rows]
    return rows


def account_licenses(emulator: PartnerEmulator) -> list[dict[str, Any]]:
    editions = {pricelist: edition for edition, pricelist in DEFAULT_PRICELISTS.items()}
    return [
        {
            **lic,
            "status": STATUS_NAMES.get(lic["status"], lic["status"]),
            "edition": editions.get(lic["pricelist"], TARIFFS[lic["pricelist"]].name),
        }
        for lic in emulator.store.licenses()
    ]


def plain(value: Any) -> Any:
    """Dataclasses, host state, tuples and enums as the dicts, lists and values a case file writes."""
    if isinstance(value, HostState):
        return plain(value.by_name())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def assert_subset(actual: Any, expected: Any, where: str) -> None:
    """Every key the case names has the value it names (null: None or absent); lists match item by item, whole."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            if value is None and key not in actual:
                continue  # `key: null` in a case: absent or None
            assert key in actual, f"{where}: no key {key!r} (keys: {sorted(actual)})"
            assert_subset(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, (list, tuple)), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, expected {len(expected)}: {actual!r}"
        for index, (got, want) in enumerate(zip(actual, expected)):
            assert_subset(got, want, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r}, expected {expected!r}"
