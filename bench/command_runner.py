"""Benchmark: commands over open connections: our host shell, a session per command, fabric's Connection.run.

Opens one connection per lab host (50 by default, one thread each), then every thread runs the same
short commands on its host, first with one runner, then the other, alternating for --repeat rounds
so that load from elsewhere on the machine hits them alike. Prints wall and CPU seconds per round, and
the whole machine's CPU seconds (the hosts' sshd and shells included).
Not a test: it gates nothing. Run as root (its lab comes up beside any other on the machine):

    .venv/bin/python bench/command_runner.py [--hosts 50] [--commands 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fabric_runner import FabricRunExecutor  # noqa: E402
from race import machine_cpu_seconds  # noqa: E402

from agent.inventory.model import Endpoint, Host, SshSettings  # noqa: E402
from agent.lab import Lab  # noqa: E402
from agent.transport import SshConnection, SshConnector  # noqa: E402
from agent.transport.executors import SessionExecutor  # noqa: E402

COMMANDS = ["uname -a", "cat /etc/os-release", "test -e /nonexistent", "id -un"]


def host_shell(connection: SshConnection, line: str) -> tuple[int, bytes, bytes]:
    return connection.execute(line, 60)


def session_per_command(connection: SshConnection, line: str) -> tuple[int, bytes, bytes]:
    return SessionExecutor(10).execute(connection.client.get_transport(), line, None, time.monotonic() + 60)


def fabric_run(connection: SshConnection, line: str) -> tuple[int, bytes, bytes]:
    executor = connection.__dict__.setdefault("fabric_executor", FabricRunExecutor(connection.host))
    return executor.execute(connection.client.get_transport(), line, None, time.monotonic() + 60)


RUNNERS: dict[str, Callable[[SshConnection, str], tuple[int, bytes, bytes]]] = {
    "host shell": host_shell,
    "session per command": session_per_command,
    "fabric Connection.run": fabric_run,
}


def one_thread_each(items: list, work: Callable) -> None:
    threads = [threading.Thread(target=work, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextmanager
def lab_connections(count: int) -> Iterator[list[SshConnection]]:
    """A lab of `count` hosts of its own (beside any other on the machine), a verified connection to
    each, opened at once; everything closed and taken down after."""
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-bench-")) / "lab")
    try:
        lab.up(count)
        factory = SshConnector(SshSettings(known_hosts=lab.known_hosts_path))
        hosts = [Host(h.name, Endpoint(h.address, 22, "root", lab.identity_file)) for h in lab.hosts]
        connections: list[SshConnection] = []
        started = time.perf_counter()
        one_thread_each(hosts, lambda host: connections.append(factory.connect(host)))
        print(f"{len(connections)} connections opened in {time.perf_counter() - started:.2f} s")
        try:
            yield connections
        finally:
            for connection in connections:
                connection.close()
            factory.close()
    finally:
        lab.down()


def timed(connections: list[SshConnection], runner, count: int) -> tuple[float, float, float]:
    """Wall, CPU and machine CPU seconds for `count` commands on every host at once."""

    def work(connection: SshConnection) -> None:
        for index in range(count):
            status, out, _ = runner(connection, COMMANDS[index % len(COMMANDS)])
            assert status in (0, 1) and (status or out), (connection.host.name, status)

    return measured(connections, work)


def measured(connections: list[SshConnection], work: Callable[[SshConnection], None]) -> tuple[float, float, float]:
    """Wall, this process's CPU and the machine's CPU seconds of `work` on every connection at once."""
    wall, cpu, machine = time.perf_counter(), time.process_time(), machine_cpu_seconds()
    one_thread_each(connections, work)
    return time.perf_counter() - wall, time.process_time() - cpu, machine_cpu_seconds() - machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--commands", type=int, default=10, help="commands per host per round")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with lab_connections(options.hosts) as connections:
        for runner in RUNNERS.values():
            timed(connections, runner, 1)  # warm-up: imports, first session
        print(
            f"{options.commands} commands per host on {len(connections)} hosts at once ({options.commands * len(connections)} commands):"
        )
        for round_number in range(1, options.repeat + 1):
            for name, runner in RUNNERS.items():
                wall, cpu, machine = timed(connections, runner, options.commands)
                print(
                    f"  round {round_number}  {name:<22} wall {wall:5.2f} s  CPU {cpu:5.2f} s  "
                    f"machine CPU {machine:5.2f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
