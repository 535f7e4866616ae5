"""Opening connections is paced: however many hosts run at once, at most MAX_HANDSHAKES handshakes
are in flight, so a large run's own burst does not time hosts out."""

from __future__ import annotations

import threading
import time

from agent.inventory.model import Endpoint, SshSettings
from agent.transport import ssh


def test_no_more_than_max_handshakes_are_in_flight(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "MAX_HANDSHAKES", 4)
    factory = ssh.SshConnector(SshSettings(known_hosts=tmp_path / "known_hosts"))
    in_flight, most, lock = 0, 0, threading.Lock()

    def slow_handshake(endpoint, gateway):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return endpoint

    monkeypatch.setattr(factory, "_handshake", slow_handshake)
    endpoints = [Endpoint(f"198.18.0.{n}", 22, "root", None) for n in range(2, 42)]
    threads = [threading.Thread(target=factory._open_once, args=(endpoint, None)) for endpoint in endpoints]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 4
