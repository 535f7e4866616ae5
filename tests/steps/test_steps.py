"""Every registered step against its data files, without a lab: a scripted host, a real partner emulator.

Each tests/data/steps/<step>/<case>.yaml is one test: the step's registered function is called
with a real HostContext (settings read by read_host_settings, a real RunServices, a HostLog in
tmp) over a ReplayConnection that expects exactly the case's commands and uploads. Steps that use
the partner account get the emulator on 127.0.0.1 and a SQLite ledger in tmp.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from partnerkit import start_emulator
from stepkit import (
    DATA,
    AccountSeed,
    account_licenses,
    assert_subset,
    case_vars,
    host_state,
    ledger_rows,
    load_case,
    plain,
    seed_account,
    seed_ledger,
)

import agent.errors
from agent.hostsettings import read_host_settings
from agent.ledger.database import LEDGER_URL_ENV
from agent.ledger.location import LEDGER_ENV
from agent.partner.settings import AUTHINFO_ENV
from agent.runner.context import HostContext
from agent.runner.registry import load_steps
from agent.runner.services import RunServices
from agent.transport.hostlog import HostLog
from agent.transport.replay import ReplayConnection

STEPS = load_steps()
CASES = sorted(DATA.glob("*/*.yaml"))


@pytest.fixture(scope="module")
def served() -> str:
    """tests/data/steps over HTTP on 127.0.0.1 (install.sh downloads): the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("path", CASES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_step_case(path: Path, tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (LEDGER_ENV, LEDGER_URL_ENV, AUTHINFO_ENV):
        monkeypatch.delenv(name, raising=False)
    step_name, case = path.parent.name, load_case(path)
    step_type = STEPS[step_name]
    files = path.parent / "files"
    ledger_path = tmp_path / "ledger.sqlite"
    vars = {"ledger_path": str(ledger_path), **case_vars(case, f"{served}/{step_name}/files")}

    emulator = None
    if step_type.uses_account or case.account is not None:
        assert case.expect.partner_calls is not None and case.expect.ledger is not None, (
            f"{path.name}: a step that uses the partner account states expect.partner_calls and expect.ledger"
        )
        emulator = start_emulator(tmp_path / "partner")
        seed_account(emulator, case.account or AccountSeed())
        vars = {
            "partner_api_url": emulator.url,
            "partner_credentials_file": str(emulator.credentials_file),
            "partner_timeout": 5,
            "partner_settle": 0.05,
            "license_key_wait": 5,
            **vars,
        }
    if case.ledger is not None:
        seed_ledger(ledger_path, case.ledger)

    try:
        settings = read_host_settings(vars)
    except agent.errors.InputError as error:  # refused as a run refuses it: before any step, host untouched
        _check_refused_before_the_step(case, error)
        return
    host = case.host.host(vars)
    log = HostLog(tmp_path / "host.log")
    connection = ReplayConnection(host, [item.expected(files) for item in case.remote], log)
    services = RunServices()
    context = HostContext(
        host=host,
        connection=connection,
        dry_run=case.dry_run,
        source_dirs=[files],
        state_dir=tmp_path,
        log=log,
        settings=settings,
        services=services,
        vars=vars,
        facts=dict(case.facts),
        state=host_state(case.state, settings.install),
    )
    params = step_type.params.parse(case.params)
    try:
        _check_outcome(case, step_type.function, context, params)
        connection.assert_done()
        _check_after(case, context, log, tmp_path / "host.log", emulator, ledger_path)
    finally:
        services.close()
        log.close()
        if emulator is not None:
            emulator.stop()


def _check_refused_before_the_step(case, error: agent.errors.InputError) -> None:
    assert case.expect.raises and isinstance(error, getattr(agent.errors, case.expect.raises)), f"vars refused: {error}"
    assert not case.remote, "a case whose vars are refused sends the host nothing: give remote: []"
    assert case.expect.message is not None and case.expect.message in str(error), str(error)
    assert "\n" not in str(error) and not any(excluded in str(error) for excluded in case.expect.message_excludes)


def _check_outcome(case, function, context, params) -> None:
    expect = case.expect
    if expect.raises:
        error_class = getattr(agent.errors, expect.raises)
        with pytest.raises(error_class) as raised:
            function(context, params)
        message = str(raised.value)
    else:
        result = function(context, params)
        assert result.status == expect.status, (
            f"step returned {result}\nwhat the host was sent:\n{context.connection.transcript_text()}"
        )
        message = result.message
        if expect.data is not None:
            assert_subset(plain(result.data), expect.data, "data")
    if expect.message is not None:
        assert expect.message in message, f"message {message!r} lacks {expect.message!r}"
    for text in expect.message_excludes:
        assert text not in message, f"message {message!r} shows {text!r}"


def _check_after(case, context, log, log_path, emulator, ledger_path) -> None:
    expect = case.expect
    if expect.facts is not None:
        assert_subset(context.facts, expect.facts, "facts")
    if expect.report is not None:
        assert_subset(plain(context.report), expect.report, "report")
    if expect.state is not None:
        assert_subset(plain(context.state), expect.state, "state")
    log.close()
    text = log_path.read_text() if log_path.exists() else ""
    for line in expect.log:
        assert line in text, f"host log lacks {line!r}:\n{text}"
    for line in expect.log_excludes:
        assert line not in text, f"host log shows {line!r}"
    if emulator is not None:
        assert dict(emulator.calls) == expect.partner_calls, "partner API calls"
    if expect.account is not None:
        assert_subset(account_licenses(emulator), expect.account, "account")
    for table, rows in (expect.ledger or {}).items():
        assert_subset(ledger_rows(ledger_path, table), rows, f"ledger.{table}")


def test_every_registered_step_has_cases() -> None:
    """A new step gets a directory of cases; a directory without a step is a renamed or removed one."""
    with_cases = {path.parent.name for path in CASES}
    missing = sorted(set(STEPS) - with_cases)
    assert not missing, f"steps without cases: add tests/data/steps/<step>/<case>.yaml for {', '.join(missing)}"
    orphans = sorted(with_cases - set(STEPS))
    assert not orphans, f"case directories of no registered step: {', '.join(orphans)}"


def test_every_step_that_changes_hosts_has_a_dry_run_case() -> None:
    """--dry-run must be honest for each step that writes: each has a case showing what it does then."""
    dry = {path.parent.name for path in CASES if load_case(path).dry_run}
    missing = sorted(name for name, step_type in STEPS.items() if not step_type.read_only and name not in dry)
    assert not missing, f"steps without a dry_run case: {', '.join(missing)}"
