"""Benchmark (not a test): `ledger import` of a partner's billing history, then `turnover` and `ledger export`.

The history is bench/turnover.py's (activations, deactivations, recorded renewals over three
years) written as the CSV `ledger import` reads. For each size: the import through the library
(every row checked, then written in one transaction) and through the CLI, one month's turnover on
the result, and a streamed export. Prints seconds, CPU seconds, rows per second and peak RSS (the
CLI's own, through GNU time: /usr/bin/time).

    .venv/bin/python bench/ledger_import.py [--rows 200000 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from turnover import generate  # noqa: E402  (bench/turnover.py: the same synthetic partner)

from agent.economics.billing_csv import COLUMNS, import_billing_csv, write_billing_csv  # noqa: E402
from agent.economics.program import load_program  # noqa: E402
from agent.economics.rules import Month  # noqa: E402
from agent.economics.turnover import turnover_report  # noqa: E402
from agent.ledger import LicenseLedger  # noqa: E402

TODAY = date(2026, 11, 26)


def write_csv(path: Path, rows: int) -> int:
    events, _ = generate(rows)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in events:
            writer.writerow(
                [row["on_date"], row["license_id"], row["edition"] or "", row["period"] or "", row["kind"], ""]
            )
    return len(events)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(rows: int, directory: Path) -> None:
    source = directory / f"history-{rows}.csv"
    written = write_csv(source, rows)
    print(f"\n== {written:,} rows ({source.stat().st_size / 1e6:.0f} MB CSV); load {os.getloadavg()[0]:.2f}")

    ledger = LicenseLedger(directory / f"library-{rows}.sqlite")
    began, cpu = time.monotonic(), time.process_time()
    import_billing_csv(ledger, source, TODAY)  # streamed: checked and staged in chunks, one transaction
    total = time.monotonic() - began
    print(
        f"import (library): {total:.1f} s, {time.process_time() - cpu:.1f} s CPU; {written / total:,.0f} rows/s "
        f"(bench process peak RSS, generator included: {peak_rss_mb():.0f} MB)"
    )

    cli_ledger = directory / f"cli-{rows}.sqlite"
    print(f"import (`ispagent ledger import`, process start included): {_cli_import(source, cli_ledger)}")

    program = load_program()
    for month in (Month(2026, 10), Month(2026, 11)):
        began = time.monotonic()
        report = turnover_report(ledger, program, TODAY, month)
        print(
            f"turnover {month}: {time.monotonic() - began:.3f} s (turnover {report.statement.turnover:,.2f} EUR, "
            f"{report.active_licenses:,} active licenses)"
        )
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "turnover",
            "--month",
            "2026-10",
            "--ledger",
            str(cli_ledger),
            "--today",
            TODAY.isoformat(),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    print(
        f"`ispagent turnover --month 2026-10` on the CLI's import: {time.monotonic() - began:.3f} s, exit {done.returncode}"
    )

    began = time.monotonic()
    with (directory / f"export-{rows}.csv").open("w", newline="") as handle:
        exported = write_billing_csv(ledger, handle)
    print(f"export (streamed): {exported:,} rows in {time.monotonic() - began:.1f} s")
    ledger.close()


def _cli_import(source: Path, ledger: Path) -> str:
    """Wall, CPU and peak RSS of `ispagent ledger import` as GNU time reports them for that process.

    Not this process's wait4: a child forked from it starts with its high-water mark (the generator
    and the library import, 600 MB and more), and Linux keeps that mark across the exec."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as usage:
        done = subprocess.run(
            [
                "/usr/bin/time",
                "-o",
                usage.name,
                "-f",
                "%e %U %S %M",
                sys.executable,
                "-m",
                "agent",
                "ledger",
                "import",
                str(source),
                "--ledger",
                str(ledger),
                "--today",
                TODAY.isoformat(),
            ],
            capture_output=True,
            text=True,
        )
        wall, user, system, peak_kb = usage.read().split()[-4:]
    said = (done.stdout + done.stderr).strip()
    return (
        f"{float(wall):.1f} s, {float(user) + float(system):.1f} s CPU, peak RSS {int(peak_kb) / 1024:.0f} MB, "
        f"exit {done.returncode}: {said[:100]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="Write CSVs and ledgers in DIR and keep them.")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="ispagent-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; files in {directory}")
    for rows in args.rows:
        measure(rows, directory)
    print("\nimport: rows checked and staged in chunks, nothing kept unless every row is good; one transaction for all")


if __name__ == "__main__":
    main()
