"""Orders of one partner account keep one pacing across agents (control nodes) sharing a ledger:
one at a time, `partner_order_interval` apart, by the database's clock (agent/licensing/breaker.py)."""

from __future__ import annotations

import threading
import time

import pytest
from pgkit import pg_schema

from agent.errors import PartnerConfigError
from agent.ledger import LicenseLedger
from agent.licensing.breaker import LedgerOrderBreaker, LocalOrderBreaker
from agent.partner.settings import partner_vars

ACCOUNT = "lab-partner@example.com@http://198.18.0.1:8443/billmgr"


@pytest.fixture
def url():
    with pg_schema() as url:
        yield url


def _orders(breakers, interval_s: float, per_agent: int, work_s: float) -> list[tuple[float, float]]:
    """Each breaker (an agent) sends `per_agent` orders from two threads; each order's (start, end)."""
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def agent(breaker) -> None:
        for _ in range(per_agent):
            with breaker.gate(ACCOUNT, interval_s):
                began = time.monotonic()
                time.sleep(work_s)  # the order's HTTP call
                with lock:
                    spans.append((began, time.monotonic()))

    threads = [threading.Thread(target=agent, args=(b,)) for b in breakers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(spans)


def _gaps(spans: list[tuple[float, float]]) -> list[float]:
    return [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:])]


def test_agents_on_one_postgresql_ledger_send_one_order_at_a_time_an_interval_apart(url):
    ledgers = [LicenseLedger(url) for _ in range(3)]  # three control nodes
    try:
        spans = _orders([LedgerOrderBreaker(ledger) for ledger in ledgers], 0.3, 2, 0.05)
    finally:
        for ledger in ledgers:
            ledger.close()
    assert len(spans) == 12
    gaps = _gaps(spans)
    assert min(gaps) >= 0.27, gaps  # never two at once, and the interval kept (the database's clock, ms apart)


def test_without_an_interval_orders_still_go_one_at_a_time_across_agents(url):
    ledgers = [LicenseLedger(url) for _ in range(2)]
    try:
        spans = _orders([LedgerOrderBreaker(ledger) for ledger in ledgers], 0.0, 3, 0.05)
    finally:
        for ledger in ledgers:
            ledger.close()
    assert len(spans) == 12 and min(_gaps(spans)) >= 0, _gaps(spans)


def test_a_sqlite_ledger_and_one_process_keep_the_pacing_too(tmp_path):
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    try:
        assert min(_gaps(_orders([LedgerOrderBreaker(ledger)], 0.2, 3, 0.02))) >= 0.18
    finally:
        ledger.close()
    assert min(_gaps(_orders([LocalOrderBreaker()], 0.2, 3, 0.02))) >= 0.18


def test_a_dead_agents_gate_is_free_at_once(url):
    """The gate is an advisory lock on the agent's own connection: a process that dies mid-order
    leaves no lock to wait out."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from agent.ledger import LicenseLedger\n"
                "from agent.licensing.breaker import LedgerOrderBreaker\n"
                f"b = LedgerOrderBreaker(LicenseLedger({url!r}))\n"
                f"with b.gate({ACCOUNT!r}, 0.0):\n    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        ledger = LicenseLedger(url)
        got = threading.Event()
        thread = threading.Thread(target=lambda: (LedgerOrderBreaker(ledger).gate(ACCOUNT).__enter__(), got.set()))
        thread.daemon = True
        thread.start()
        assert not got.wait(1.0)  # held by the other process
        holder.kill()
        assert got.wait(5.0)
        ledger.close()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("value", [-1, "soon", True, 3601, float("nan")])
def test_a_bad_order_interval_is_one_line(value):
    with pytest.raises(PartnerConfigError, match="partner_order_interval: .* seconds from 0 to 3600"):
        partner_vars({"partner_api_url": "http://127.0.0.1:1/billmgr", "partner_order_interval": value})
    given = {"partner_api_url": "http://127.0.0.1:1/billmgr", "partner_order_interval": "2.5"}
    assert partner_vars(given).order_interval == 2.5
