"""Test your own steps, playbooks and host sources without hosts: a pytest plugin, as fabric.testing is.

Installed with ispagent (entry point `pytest11`), it gives every test the `replay_connector` fixture:
a Connector whose hosts answer from scripts of ExpectedCommand / ExpectedUpload, checked when the
test ends. Hand it to `start_run(plan, listener, connector=...)`, or call `run_host` yourself.

    def test_my_step(replay_connector, tmp_path):
        replay_connector.script("web1", [ExpectedCommand("uname -r", stdout="6.1\\n")])
        result = start_run(plan, print, connector=replay_connector)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from agent.inventory.model import Host
from agent.transport.hostlog import HostLog
from agent.transport.replay import Expected, ExpectedCommand, ExpectedUpload, ReplayConnection

__all__ = ["ExpectedCommand", "ExpectedUpload", "ReplayConnection", "ReplayConnector", "replay_connector"]


class ReplayConnector:
    """A Connector of replayed hosts: each host's connection follows the script given for its name.

    A host with no script gets an empty one (any command it is sent fails the test).
    """

    def __init__(self, scripts: dict[str, Iterable[Expected]] | None = None) -> None:
        self.scripts: dict[str, list[Expected]] = {name: list(items) for name, items in (scripts or {}).items()}
        self.connections: dict[str, ReplayConnection] = {}
        self._lock = threading.Lock()

    def script(self, host_name: str, expected: Iterable[Expected]) -> None:
        self.scripts[host_name] = list(expected)

    def connect(self, host: Host, log: HostLog | None = None) -> ReplayConnection:
        connection = ReplayConnection(host, self.scripts.get(host.name, ()), log)
        with self._lock:
            self.connections[host.name] = connection
        return connection

    def assert_done(self) -> None:
        """Every connection met its whole script, and nothing strayed from it."""
        for connection in self.connections.values():
            connection.assert_done()

    def close(self) -> None:
        pass


@pytest.fixture
def replay_connector() -> Iterator[ReplayConnector]:
    """A ReplayConnector whose connections must all have met their scripts when the test ends."""
    connector = ReplayConnector()
    yield connector
    connector.assert_done()
