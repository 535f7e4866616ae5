"""A control node cut from PostgreSQL by a firewall that drops its packets (no reset, no FIN): its
ledger calls fail in seconds, not after TCP's 15 minutes of retransmissions, and the locks its
session held are freed for the other nodes (agent/ledger/postgresql.py's keepalives and timeouts).

The node is a process in a network namespace of its own (a veth to this machine), reaching the
database through pgkit's proxy on the veth, as the lab's control nodes do; nftables in that namespace
drops the packets. Needs root and nft (skipped without them; no lab is brought up)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from pgkit import CuttableProxy, pg_schema

from agent.ledger import LicenseLedger

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, ip and nft (a network namespace and its firewall)",
)

NODE = """
import sys, time
from agent.errors import LedgerError
from agent.ledger import LicenseLedger
ledger = LicenseLedger(sys.argv[1])
try:
    with ledger.db.host_lock("h1"):  # giving it back fails too, the same way
        print("held", flush=True)
        sys.stdin.readline()  # the test cuts the namespace off, then says go
        began = time.monotonic()
        ledger.host("h1", "198.18.0.2", "h1.example")
        print("written", flush=True)
except LedgerError as error:
    print(f"failed {time.monotonic() - began:.1f} {error}", flush=True)
"""


@pytest.fixture
def namespace():
    name, veth = f"ispcut{os.getpid() % 100000}", f"ispcut{os.getpid() % 100000}h"
    subnet = 10 + os.getpid() % 200
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name],
        ["ip", "addr", "add", f"10.252.{subnet}.1/30", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", name, "addr", "add", f"10.252.{subnet}.2/30", "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield name, f"10.252.{subnet}.1"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)  # takes the veth pair along


def test_a_node_cut_off_by_dropped_packets_fails_in_seconds_and_its_locks_are_freed(namespace):
    name, address = namespace
    with pg_schema() as url:
        proxy = CuttableProxy(listen=address)
        node = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", NODE, proxy.url(url)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert node.stdout.readline().strip() == "held"
            rules = (
                f"table inet cut {{\n"
                f" chain out {{ type filter hook output priority 0; ip daddr {address} drop; }}\n"
                f" chain in {{ type filter hook input priority 0; ip saddr {address} drop; }}\n}}\n"
            )
            subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=rules, text=True, check=True)
            node.stdin.write("go\n")
            node.stdin.flush()
            cut_at = time.monotonic()
            other = LicenseLedger(url)  # another node, still connected
            try:
                with other.db.host_lock("h1", wait=60):
                    freed_after = time.monotonic() - cut_at
            finally:
                other.close()
            answer = node.communicate(timeout=60)[0]
        finally:
            node.kill()
            proxy.cut()
    assert answer.startswith("failed "), answer
    failed_after = float(answer.split()[1])
    assert failed_after < 25, answer  # about 10 s (TCP user timeout) + 5 s (connect timeout)
    assert "Traceback" not in answer and "ispagent-test-pw" not in answer
    assert freed_after < 25, freed_after  # the server's end (here the proxy's) dropped the silent session
    print(f"\ncut off: its next write failed after {failed_after:.1f}s; its host lock freed after {freed_after:.1f}s")
