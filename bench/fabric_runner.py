"""The transport with commands run by fabric's `Connection.run` (invoke's runner) instead of our own
session loop, to measure one against the other. Not used by ispagent itself.

    .venv/bin/python bench/fabric_runner.py run playbooks/smoke.yaml -i INVENTORY   # the CLI, patched
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import fabric
from invoke.exceptions import CommandTimedOut

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.errors import CommandTimeout, HostUnreachable  # noqa: E402
from agent.secrets import mask  # noqa: E402
from agent.transport.ssh import SshConnection  # noqa: E402


def exec_with_fabric_run(self: SshConnection, line: str, timeout: float, stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """SshConnection._exec's contract (status, stdout, stderr) on fabric's Connection.run."""
    self._transport()  # as _exec: a dead connection is reported, not quietly reopened by fabric
    in_stream = io.StringIO(stdin.decode()) if stdin is not None else False
    try:
        result = _fabric_view(self).run(
            line, hide=True, warn=True, in_stream=in_stream, timeout=timeout, encoding="utf-8"
        )
    except CommandTimedOut:
        raise CommandTimeout(f"command timed out: {mask(line)[:200]}") from None
    except Exception as error:  # invoke wraps errors of its I/O threads in ThreadException
        raise HostUnreachable(f"{self.host.name}: connection lost: {error}") from None
    return result.exited, result.stdout.encode(), result.stderr.encode()


def _fabric_view(connection: SshConnection) -> fabric.Connection:
    """A fabric Connection over the transport's open, verified client: fabric only runs the commands."""
    view = connection.__dict__.get("_fabric_view")
    if view is None or view.client is not connection.client:
        endpoint = connection.host.endpoint
        view = fabric.Connection(endpoint.address, user=endpoint.user, port=endpoint.port)
        view.client, view.transport = connection.client, connection.client.get_transport()
        connection.__dict__["_fabric_view"] = view
    return view


def use_fabric_runner() -> None:
    SshConnection._exec = exec_with_fabric_run


if __name__ == "__main__":
    use_fabric_runner()
    from agent.cli.main import main

    sys.argv[0] = "ispagent"
    main()
