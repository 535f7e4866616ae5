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


def test_a_connection_being_opened_reads_its_config_while_others_are_made(tmp_path):
    """open() reads `authentication` and more from the Config while other hosts' connections are
    made; each making writes to the Config it is given, so a shared one was empty for a moment."""
    factory = ConnectionFactory(SshSettings(known_hosts=tmp_path / "known_hosts"))
    opened = [factory.fabric_connection(Endpoint("127.0.0.1", 2200 + n), None, {}) for n in range(8)]
    errors: list[str] = []
    done = threading.Event()

    def make() -> None:
        while not done.is_set():
            factory.fabric_connection(Endpoint("127.0.0.1", 2300), None, {})

    def read(connection) -> None:
        try:
            for _ in range(2000):
                connection.authentication.strategy_class  # what fabric's open() reads
                connection.config.timeouts.connect
        except Exception as error:
            errors.append(repr(error)[:200])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        maker = threading.Thread(target=make)
        maker.start()
        readers = [threading.Thread(target=read, args=(connection,)) for connection in opened]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join()
        done.set()
        maker.join()
    finally:
        sys.setswitchinterval(interval)
    factory.close()
    assert errors == []
