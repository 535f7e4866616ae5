"""The ledger store: host locks across processes, order intents, the activation outbox."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from agent.ledger import HostLocked, LicenseLedger


def test_host_remoteid_is_made_once_and_kept(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    first = ledger.host("h1", "198.18.0.2", "h1.lab.example")
    again = LicenseLedger(tmp_path / "l.sqlite").host("h1", "198.18.0.9", "h1.lab.example")
    assert first.remoteid == again.remoteid and first.remoteid.startswith("isp-")
    assert ledger.hosts()[0].address == "198.18.0.9"


def test_order_intent_is_durable_then_closed_with_the_license(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    host = ledger.host("h1", "198.18.0.2", None)
    ledger.begin_order(host, "198.18.0.2", "lite", "monthly")
    reopened = LicenseLedger(tmp_path / "l.sqlite")  # what a process started after a crash sees
    assert reopened.order_intent("h1").state == "ordering"
    ledger.begin_order(host, "198.18.0.2", "lite", "monthly")
    assert reopened.order_intent("h1").attempts == 2
    ledger.finish_order("h1", "3100001", "198.18.0.2", "lite", "monthly")
    assert reopened.order_intent("h1").state == "done"
    assert reopened.license_of_host("h1").id == "3100001"
    kinds = [e["kind"] for e in reopened.events()]
    assert kinds == ["order.intent", "order.intent", "license.ordered"]


def test_a_free_license_is_claimed_by_one_host_only(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    assert ledger.claim_license("7", "h1", "198.18.0.2", "lite", "monthly")
    assert not ledger.claim_license("7", "h2", "198.18.0.3", "lite", "monthly")
    assert ledger.license_of_host("h1").id == "7" and ledger.license_of_host("h2") is None


HOLD = """
import sys, time
from pathlib import Path
from agent.ledger import LicenseLedger
with LicenseLedger(Path(sys.argv[1])).host_lock("h1"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(tmp_path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "l.sqlite"), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_host_lock_held_by_a_live_process_keeps_others_out(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    holder = _holder(tmp_path, 30)
    try:
        with pytest.raises(HostLocked, match="another ispagent process"):
            with ledger.host_lock("h1", wait=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_host_lock_of_a_killed_process_is_taken_over_at_once(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    holder = _holder(tmp_path, 30)
    holder.kill()
    holder.wait()
    began = time.monotonic()
    with ledger.host_lock("h1", wait=5):
        pass
    assert time.monotonic() - began < 1


def test_activation_outbox_keeps_an_unconfirmed_activation(tmp_path):
    ledger = LicenseLedger(tmp_path / "l.sqlite")
    host = ledger.host("h1", "198.18.0.2", "h1.lab.example")
    ledger.queue_activation("3100001", host, "198.18.0.2", "lite", "monthly")
    ledger.queue_activation("3100001", host, "198.18.0.2", "lite", "monthly")  # a rerun: still one
    [pending] = ledger.activations("h1", state="pending")
    ledger.activation_failed(pending, "soft.edit: HTTP 503")
    assert ledger.activations("h1", state="pending")[0].attempts == 1
    ledger.confirm_activation(pending)
    assert ledger.activations(state="pending") == [] and len(ledger.activations("h1")) == 1


def test_two_threads_opening_a_new_ledger_together_both_get_it(tmp_path):
    # The first open switches the file to WAL while the other may be migrating it.
    for attempt in range(15):
        path = tmp_path / f"l{attempt}.sqlite"
        barrier, errors = threading.Barrier(2), []

        def open_it():
            barrier.wait()
            try:
                LicenseLedger(path).close()
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=open_it) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def test_close_disposes_the_engine_and_the_file_opens_again(tmp_path):
    path = tmp_path / "l.sqlite"
    with LicenseLedger(path) as ledger:
        ledger.host("h1", "198.18.0.2", None)
        assert ledger.engine.pool.checkedin() == 1
    assert ledger.closed and ledger.engine.pool.checkedin() == 0
    with LicenseLedger(path) as again:
        assert [h.name for h in again.hosts()] == ["h1"]


def test_many_hosts_writing_at_once_wait_their_turn_instead_of_failing_for_a_pool_connection(tmp_path):
    # 40 writers against a pool of 15 connections that gives up after 0.5 s: writers that queued
    # inside SQLite held every pooled connection, and the rest failed with "QueuePool limit".
    with LicenseLedger(tmp_path / "l.sqlite") as ledger:
        backend = ledger.backend
        backend.engine.pool._timeout = 0.5
        errors = []

        def write_slowly():
            try:
                with backend.write() as db:
                    db.exec_driver_sql("SELECT 1")
                    time.sleep(0.05)
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=write_slowly) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def test_a_ledger_of_version_5_gains_the_index_that_finds_one_hosts_activations(tmp_path):
    """Every run's drift and report steps ask for one host's pending activations: in a partner's
    ledger of thousands of hosts that must not read every host's."""
    path = tmp_path / "l.sqlite"
    LicenseLedger(path).close()
    with sqlite3.connect(path) as db:  # as ispagent before version 6 left it
        db.execute("DROP INDEX activations_host")
        db.execute("DELETE FROM schema_version WHERE version = 6")
    with LicenseLedger(path) as ledger:
        assert ledger.schema_version() == 6
        host = ledger.host("h1", "198.18.0.2", "h1.lab.example")
        ledger.queue_activation("3100001", host, "198.18.0.2", "lite", "monthly")
        assert [a.license_id for a in ledger.activations("h1", state="pending")] == ["3100001"]
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM activations WHERE host_name = ? AND state = ? ORDER BY id",
            ("h1", "pending"),
        ).fetchall()
    assert any("activations_host" in row[-1] for row in plan), plan
