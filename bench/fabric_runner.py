"""The transport with commands run by fabric's `Connection.run` (invoke's runner) instead of the host
shell, to measure one against the other. Not used by ispagent itself.

    .venv/bin/python bench/fabric_runner.py run playbooks/smoke.yaml -i INVENTORY   # the CLI, patched
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.errors import CommandTimeout  # noqa: E402
from agent.inventory.model import Host  # noqa: E402
from agent.secrets import mask  # noqa: E402
from agent.transport.executors import ConnectionLost  # noqa: E402
from agent.transport.ssh import SshConnector  # noqa: E402


class FabricRunExecutor:
    """A CommandExecutor on fabric's Connection.run, over the connection's open, verified transport:
    fabric only runs the commands."""

    def __init__(self, host: Host) -> None:
        endpoint = host.endpoint
        self.view = fabric.Connection(endpoint.address, user=endpoint.user, port=endpoint.port)

    def execute(
        self, transport: paramiko.Transport, line: str, stdin: bytes | None, deadline: float
    ) -> tuple[int, bytes, bytes]:
        self.view.transport = transport
        in_stream = io.StringIO(stdin.decode()) if stdin is not None else False
        try:
            result = self.view.run(
                line,
                hide=True,
                warn=True,
                in_stream=in_stream,
                timeout=max(1, round(deadline - time.monotonic())),
                encoding="utf-8",
            )
        except CommandTimedOut:
            raise CommandTimeout(f"command timed out: {mask(line)[:200]}") from None
        except Exception as error:  # invoke wraps errors of its I/O threads in ThreadException
            raise ConnectionLost(str(error)) from None
        return result.exited, result.stdout.encode(), result.stderr.encode()

    def close(self) -> None:
        self.view.transport = None  # the transport belongs to the SshConnection, which closes it


def use_fabric_runner() -> None:
    original = SshConnector.connect

    def connect(self, host, log=None):
        connection = original(self, host, log)
        connection.executor = FabricRunExecutor(host)
        return connection

    SshConnector.connect = connect


if __name__ == "__main__":
    use_fabric_runner()
    from agent.cli.main import main

    sys.argv[0] = "ispagent"
    main()
