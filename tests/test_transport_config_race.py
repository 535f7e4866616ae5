"""fabric's Config is shared by a run's connections; making them at once must never fail."""

from __future__ import annotations

import sys
import threading

from agent.inventory.model import Endpoint, SshSettings
from agent.transport.ssh import ConnectionFactory


def test_many_threads_make_connections_from_the_shared_config_at_once(tmp_path):
    factory = ConnectionFactory(SshSettings(known_hosts=tmp_path / "known_hosts"))
    errors: list[str] = []
    barrier = threading.Barrier(16)

    def make() -> None:
        barrier.wait()
        try:
            for port in range(2200, 2210):
                factory.fabric_connection(Endpoint("127.0.0.1", port), None, {})  # made, never opened
        except Exception as error:  # what a worker thread would have died of
            errors.append(repr(error)[:200])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows at once without the lock
    try:
        threads = [threading.Thread(target=make) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    factory.close()
    assert errors == []
