"""`ispagent turnover`, `forecast`, `ledger import|export`, and the money in `plan` / `reconcile`, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from partnerkit import partner_vars, start_emulator

from agent.cli.main import cli
from agent.partner.client import PartnerClient
from agent.partner.settings import settings_from_vars

PROGRAM = Path(__file__).parents[1] / "data" / "economics" / "program.yaml"
HEADER = "date,license_id,edition,period,kind,price\n"


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def ledger(tmp_path) -> list[str]:
    """A year of history: 10 lite monthly from 2025-12-05, 20 more each month from 2026-06, one deactivation."""
    rows = [f"2025-12-05,{n},lite,monthly,activation," for n in range(1, 11)]
    for month in range(6, 12):
        rows += [f"2026-{month:02d}-10,{month}{n:02d},pro,monthly,activation," for n in range(20)]
    rows += ["2026-11-20,1,,,deactivation,", "2026-11-21,,,,payment,1000"]
    csv = tmp_path / "history.csv"
    csv.write_text(HEADER + "\n".join(rows) + "\n")
    options = ["--ledger", str(tmp_path / "l.sqlite"), "--program", str(PROGRAM), "--today", "2026-11-26"]
    result = _cli("ledger", "import", str(csv), *options)
    assert result.exit_code == 0 and "imported 132 event(s)" in result.output, result.output
    return options


def test_turnover_json_of_this_month_so_far(ledger):
    result = _cli("turnover", "--format", "json", *ledger)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # November so far: 10 lite renew on 11-05 (100), 100 pro (06..10) renew on 11-10 (2000), 20 new pro
    # on 11-10 (400) = 2500. October's 100 + 100 x 20 = 2100 >= 1000: November opens at 20 %.
    assert (data["month"], data["complete"], data["turnover"], data["invoice_total"]) == (
        "2026-11",
        False,
        2500.0,
        2000.0,
    )
    assert data["tier_at_start"] == {"tier": 3, "discount": 20.0, "min_turnover": 1000.0} and data["next_tier"] is None
    assert data["active_licenses"] == 129 and data["reminder"] is None and data["months_under_minimum"] == 0


def test_turnover_csv_and_a_chart_of_12_months(ledger, tmp_path):
    chart = tmp_path / "turnover.png"
    result = _cli("turnover", "--month", "2026-10", "--format", "csv", "--chart", str(chart), *ledger)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "month,kind,edition,period,quantity,unit_price,discount,list_amount,amount"
    assert lines[-1] == "2026-10,total,,,110,,,2100.00,1680.00"  # 2100 at 20 % (September: 1700 >= 1000)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    svg = tmp_path / "turnover.svg"
    assert _cli("turnover", "--chart", str(svg), *ledger).exit_code == 0 and b"<svg" in svg.read_bytes()[:400]


def test_turnover_table_in_december_reminds_of_the_marketing_plan(ledger):
    options = [o if o != "2026-11-26" else "2026-12-02" for o in ledger]
    result = _cli("turnover", *options)
    assert result.exit_code == 0, result.output
    assert "reminder: annual marketing plan for 2027 due between 1 and 15 December" in result.output
    assert "active licenses: 129 of 50: marketing support: yes" in result.output


def test_forecast_table(ledger):
    result = _cli("forecast", "--months", "3", "--rate", "10/month", "--edition", "host", *ledger)
    assert result.exit_code == 0, result.output
    assert "10 new host monthly license(s) a month" in result.output
    assert "2027-02" in result.output and "planned monthly turnover" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["turnover", "--month", "2027-01"], "--month 2027-01: that month has not begun (today is 2026-11-26)"),
        (["turnover", "--month", "2025-01"], "--month 2025-01: the ledger starts in 2025-12"),
        (["turnover", "--month", "Nov"], "--month 'Nov': not a month; write YYYY-MM"),
        (["turnover", "--chart", "x.gif"], "--chart x.gif: write a .png or .svg file name"),
        (["forecast", "--rate", "many"], "--rate 'many': write a whole number"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(ledger, args, words):
    result = _cli(*args, *ledger)
    assert result.exit_code == 2 and words in result.output and result.output.count("\n") == 1, result.output


def test_import_with_errors_exits_2_names_the_line_and_imports_nothing(ledger, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "2026-11-01,9000,lite,monthly,activation,\n2026-11-02,9001,lite,weekly,activation,\n")
    result = _cli("ledger", "import", str(bad), *ledger)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{bad}:3: period 'weekly' is not one of monthly, annual; nothing was imported" in result.output
    export = _cli("ledger", "export", *ledger)
    assert "9000" not in export.output and export.output.count("\n") == 133  # header + 132 rows


def test_export_then_import_into_another_ledger_gives_the_same_turnover(ledger, tmp_path):
    out = tmp_path / "out.csv"
    assert _cli("ledger", "export", "-o", str(out), *ledger).exit_code == 0
    other = ["--ledger", str(tmp_path / "other.sqlite")] + ledger[2:]
    assert _cli("ledger", "import", str(out), *other).exit_code == 0
    first = json.loads(_cli("turnover", "--format", "json", *ledger).output)
    second = json.loads(_cli("turnover", "--format", "json", *other).output)
    assert first == second


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    url = "postgresql+psycopg://ispagent:s3cret-pw@127.0.0.1:1/ispagent"
    result = _cli("turnover", "--ledger", url)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert (
        "s3cret-pw" not in result.output and "postgresql+psycopg://ispagent:***@127.0.0.1:1/ispagent" in result.output
    )
    assert "check that the database is running and reachable, or fix ledger_url" in result.output


@pytest.fixture
def account(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    vars = partner_vars(emulator, tmp_path / "ledger.sqlite", program_file=str(PROGRAM))
    hosts = {
        f"web{i}": {"address": f"203.0.113.{i}", "vars": {"fqdn": f"web{i}.example.com", "edition": "pro"}}
        for i in range(1, 4)
    }
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {"vars": vars}, "hosts": hosts}))
    yield emulator, inventory, PartnerClient(settings_from_vars(vars))
    emulator.stop()


def test_plan_prices_the_licenses_to_order_before_spending(account):
    emulator, inventory, client = account
    client.order("pro", "monthly", "203.0.113.1", "web1.example.com", "")
    result = _cli("plan", "-i", str(inventory), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    ordered = [h for h in plan["hosts"] if h["action"] == "ordered"]
    # the ledger bills nothing yet this month: two pro at 20.00, first tier (10 %): 18.00 each
    assert [(h["list_price"], h["discount"], h["price"]) for h in ordered] == [(20.0, 10.0, 18.0)] * 2
    assert (plan["money"]["to_order"], plan["money"]["total"], plan["money"]["turnover_after"]) == (2, 36.0, 40.0)
    table = _cli("plan", "-i", str(inventory))
    assert "to order: 2 license(s), 40.00 EUR at list price, 36.00 EUR after discount" in table.output
    assert emulator.calls.get("soft.order.param") == 1


def test_reconcile_reports_licenses_the_ledger_does_not_bill(account):
    emulator, inventory, client = account
    license_id = client.order("pro", "monthly", "203.0.113.1", "web1.example.com", "")
    result = _cli("reconcile", "-i", str(inventory), "--json")
    findings = {(f["kind"], f["license_id"]) for f in json.loads(result.output)}
    assert ("unbilled", license_id) in findings


def _dry_run_license(inventory: Path, name: str, services, tmp_path: Path):
    """The license step of a dry run on inventory host `name` (web1..web3), with the run's `services`:
    its context (with the report) and its result."""
    from types import SimpleNamespace

    from agent.hostsettings import read_host_settings
    from agent.inventory.model import Endpoint, Host
    from agent.runner.context import HostContext
    from agent.runner.registry import NoParams
    from agent.steps.license import license_step

    vars = yaml.safe_load(inventory.read_text())["defaults"]["vars"] | {"edition": "pro", "fqdn": f"{name}.example.com"}
    ctx = HostContext(
        host=Host(name, Endpoint(f"203.0.113.{name[-1]}")),
        connection=None,
        dry_run=True,
        source_dirs=[],
        state_dir=tmp_path,
        log=SimpleNamespace(write=lambda *a: None),
        settings=read_host_settings(vars),
        services=services,
        vars=vars,
    )
    return ctx, license_step(ctx, NoParams())


def test_dry_run_license_step_shows_the_price_at_todays_tier(account, tmp_path):
    from agent.runner.services import RunServices

    emulator, inventory, client = account
    services = RunServices()
    ctx, result = _dry_run_license(inventory, "web2", services, tmp_path)
    services.close()
    assert "would order new pro monthly license" in result.message
    assert result.message.endswith(": 20.00 EUR list, 10 % off: 18.00 EUR")
    assert ctx.report["license"]["price"] == "18.00" and emulator.calls.get("soft.order.param") is None


def test_a_dry_runs_hosts_share_one_read_of_the_months_billing(account, tmp_path, monkeypatch):
    """Pricing an order reads the ledger's whole billing history (the tiers of the months before):
    a dry run over many new servers reads it once, and prices each as the month's next order."""
    import agent.economics.turnover
    from agent.runner.services import RunServices

    reads = []
    month_so_far = agent.economics.turnover.month_so_far
    monkeypatch.setattr(
        agent.economics.turnover, "month_so_far", lambda *args: reads.append(args) or month_so_far(*args)
    )
    emulator, inventory, client = account
    services = RunServices()
    messages = [_dry_run_license(inventory, name, services, tmp_path)[1].message for name in ("web2", "web3")]
    services.close()
    assert len(reads) == 1
    assert all(message.endswith(": 20.00 EUR list, 10 % off: 18.00 EUR") for message in messages), messages


def test_importing_the_same_history_again_imports_nothing_and_turnover_stays(ledger, tmp_path):
    before = _cli("turnover", "--format", "json", *ledger)
    again = _cli("ledger", "import", str(tmp_path / "history.csv"), *ledger)
    assert again.exit_code == 0, again.output
    assert "imported 0 event(s)" in again.output and "(132 already in the ledger, left out)" in again.output
    assert _cli("turnover", "--format", "json", *ledger).output == before.output
    exported = _cli("ledger", "export", *ledger).output
    assert exported.count(",payment,") == 1 and exported.count(",1,lite,monthly,activation,") == 1


def test_a_newer_export_repeating_older_rows_imports_only_the_new_ones(ledger, tmp_path):
    # The same payment twice on one day is two payments: one is in the ledger, the second is new.
    newer = tmp_path / "newer.csv"
    newer.write_text(
        HEADER + "2026-11-20,1,,,deactivation,\n2026-11-21,,,,payment,1000\n"
        "2026-11-21,,,,payment,1000\n2026-11-25,2,lite,monthly,renewal,\n"
    )
    result = _cli("ledger", "import", str(newer), *ledger)
    assert result.exit_code == 0, result.output
    assert "imported 2 event(s)" in result.output and "(2 already in the ledger, left out)" in result.output
    exported = _cli("ledger", "export", *ledger).output
    assert exported.count(",payment,") == 2 and exported.count("2026-11-25,2,lite,monthly,renewal,") == 1
