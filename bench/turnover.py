"""Benchmark (not a test): `turnover` for one month on a SQLite ledger of 1 000 000 billing events.

Three years of a large partner: 450 000 activations, 315 000 deactivations (70 % of licenses leave
after 1 to 12 months) and 235 000 recorded renewals, with the program's default rules (implied
renewals too). Prints the time of one month's report, and of the same through the CLI.

    .venv/bin/python bench/turnover.py [--events N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert

from agent.economics.program import load_program
from agent.economics.rules import Month
from agent.economics.turnover import turnover_report
from agent.ledger import LicenseLedger
from agent.ledger.schema import FAR_FUTURE, billing_events, billing_terms

EDITIONS = ("lite", "lite", "pro", "pro", "host", "business")
FIRST_DAY, LAST_DAY = date(2023, 12, 1), date(2026, 11, 25)


def generate(events: int, seed: int = 5) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    licenses = round(events * 0.45)
    span = (LAST_DAY - FIRST_DAY).days
    rows, terms = [], []
    for number in range(licenses):
        started = FIRST_DAY + timedelta(days=rng.randrange(span))
        edition, period = rng.choice(EDITIONS), "annual" if rng.random() < 0.15 else "monthly"
        license_id = str(4_000_000 + number)
        rows.append(
            dict(on_date=started.isoformat(), kind="activation", license_id=license_id, edition=edition, period=period)
        )
        ended = FAR_FUTURE
        if rng.random() < 0.7:
            gone = started + timedelta(days=rng.randint(30, 365))
            if gone <= LAST_DAY:
                ended = gone.isoformat()
                rows.append(dict(on_date=ended, kind="deactivation", license_id=license_id, edition=None, period=None))
        terms.append(
            dict(license_id=license_id, edition=edition, period=period, started_on=started.isoformat(), ended_on=ended)
        )
    monthly = [t for t in terms if t["period"] == "monthly"]
    while len(rows) < events:  # renewals recorded by the partner's billing, on the license's day
        term = rng.choice(monthly)
        start = date.fromisoformat(term["started_on"])
        months = rng.randint(1, 11)
        index = start.year * 12 + start.month - 1 + months
        on = date(index // 12, index % 12 + 1, min(start.day, 28))
        if on.isoformat() < term["ended_on"] and on <= LAST_DAY:
            rows.append(
                dict(
                    on_date=on.isoformat(),
                    kind="renewal",
                    license_id=term["license_id"],
                    edition=term["edition"],
                    period="monthly",
                )
            )
    stamp = "2026-11-26T00:00:00+00:00"
    for row in rows:
        row.update(price=None, source="import", created_at=stamp)
    rows.sort(key=lambda r: r["on_date"])
    return rows, terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Build the ledger in DIR and keep it.")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="ispagent-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ledger.sqlite"
    ledger = LicenseLedger(path)
    if not ledger.billing.first_date():
        began = time.monotonic()
        rows, terms = generate(args.events)
        with ledger.engine.begin() as db:  # bulk load straight into the tables (an import checks rows one by one)
            db.execute(insert(billing_events), rows)
            db.execute(insert(billing_terms), terms)
            db.exec_driver_sql("ANALYZE")
        print(f"built {len(rows):,} events ({len(terms):,} licenses) in {time.monotonic() - began:.1f} s: {path}")
    program, today = load_program(), date(2026, 11, 26)
    for month in (Month(2026, 10), Month(2026, 11)):
        began = time.monotonic()
        report = turnover_report(ledger, program, today, month)
        seconds = time.monotonic() - began
        print(
            f"turnover {month}: {seconds:.3f} s  (turnover {report.statement.turnover:,.2f} EUR, "
            f"invoice {report.statement.invoice_total:,.2f} EUR, {sum(l.quantity for l in report.statement.lines):,} charges, "
            f"{report.active_licenses:,} active licenses)"
        )
    began = time.monotonic()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "turnover",
            "--month",
            "2026-10",
            "--ledger",
            str(path),
            "--today",
            today.isoformat(),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    print(
        f"`ispagent turnover --month 2026-10` end to end (process start included): {time.monotonic() - began:.3f} s, exit {cli.returncode}"
    )


if __name__ == "__main__":
    main()
