"""Helpers for license tests: an in-process partner emulator and inventories that use it."""

from __future__ import annotations

from pathlib import Path

from harness.partner_emulator import HarnessEmulator
from labkit import write_inventory

from agent.lab.partner import PartnerEmulator

BASE_VARS = {"edition": "lite", "period": "monthly", "release": "stable"}


def start_emulator(directory: Path, **faults) -> HarnessEmulator:
    """An emulator on a thread, with the harness's order gate (`.order_gate`) and `faults` set."""
    emulator = HarnessEmulator(directory).start()
    if faults:
        emulator.set_faults(**faults)
    return emulator


def partner_vars(emulator: PartnerEmulator, ledger: Path, **extra) -> dict:
    return {
        **BASE_VARS,
        "partner_api_url": emulator.url,
        "partner_credentials_file": str(emulator.credentials_file),
        "partner_timeout": 5,
        "partner_settle": 0.3,
        "license_key_wait": 15,
        "ledger_path": str(ledger),
        **extra,
    }


def license_inventory(lab, path: Path, emulator: PartnerEmulator, ledger: Path, hosts=None, **extra) -> Path:
    chosen = hosts if hosts is not None else lab.hosts
    return write_inventory(
        lab,
        path,
        vars=partner_vars(emulator, ledger, **extra),
        hosts={h.name: {"address": h.address, "vars": {"fqdn": h.fqdn}} for h in chosen},
    )


def live_licenses(emulator: PartnerEmulator) -> list[dict]:
    return [lic for lic in emulator.store.licenses() if lic["status"] != 4]


def fill_account(emulator: PartnerEmulator, count: int, account: str = "lab-partner@example.com") -> None:
    """`count` other active lite licenses in the account, on 10.64.0.0/10 (no lab or test host is
    there), written straight into the emulator's store: ordering 20 000 through the API takes minutes."""
    with emulator.store.lock:
        fill_store(emulator.store.db, count, account)


def fill_store(db, count: int, account: str = "lab-partner@example.com", start: int = 0) -> None:
    """`fill_account` on the emulator's SQLite connection (or one opened on its partner.sqlite);
    `start`: how many `fill_store` wrote before (their IPs are not used again)."""
    rows = [
        (
            account,
            "55227",
            1,
            f"10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}",
            f"other-{n}.example",
            f"other-{n}",
            2,
            f"other-{n}-key",
            0.0,
            "2026-01-01",
            "2027-01-01",
        )
        for n in range(start, start + count)
    ]
    db.execute("BEGIN")  # one transaction, not 20 000 (the store's connection autocommits)
    db.executemany(
        "INSERT INTO licenses (account, pricelist, period, ip, licname, remoteid, status, lickey,"
        " key_ready_at, createdate, expiredate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
