"""Benchmark: commands over open connections, our session loop against fabric's Connection.run.

Opens one connection per lab host (50 by default, one thread each), then every thread runs the same
short commands on its host, first with one runner, then the other, alternating for --repeat rounds
so that load from elsewhere on the machine hits both alike. Prints wall and CPU seconds per round.
Not a test: it gates nothing. Run as root when no other lab is up:

    .venv/bin/python bench/command_runner.py [--hosts 50] [--commands 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.inventory.model import Endpoint, Host, SshSettings  # noqa: E402
from agent.lab import Lab  # noqa: E402
from agent.transport import ConnectionFactory, SshConnection  # noqa: E402
from fabric_runner import exec_with_fabric_run  # noqa: E402

COMMANDS = ["uname -a", "cat /etc/os-release", "test -e /nonexistent", "id -un"]


def paramiko_session(connection: SshConnection, line: str) -> tuple[int, bytes, bytes]:
    return connection._exec(line, 60, None)


def fabric_run(connection: SshConnection, line: str) -> tuple[int, bytes, bytes]:
    return exec_with_fabric_run(connection, line, 60, None)


RUNNERS: dict[str, Callable[[SshConnection, str], tuple[int, bytes, bytes]]] = {
    "paramiko session": paramiko_session,
    "fabric Connection.run": fabric_run,
}


def one_thread_each(items: list, work: Callable) -> None:
    threads = [threading.Thread(target=work, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def timed(connections: list[SshConnection], runner, count: int) -> tuple[float, float]:
    """Wall and CPU seconds for `count` commands on every host at once."""
    def work(connection: SshConnection) -> None:
        for index in range(count):
            status, out, _ = runner(connection, COMMANDS[index % len(COMMANDS)])
            assert status in (0, 1) and (status or out), (connection.host.name, status)

    wall, cpu = time.perf_counter(), time.process_time()
    one_thread_each(connections, work)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--commands", type=int, default=10, help="commands per host per round")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-bench-")) / "lab")
    try:
        lab.up(options.hosts)
        factory = ConnectionFactory(SshSettings(known_hosts=lab.known_hosts_path))
        hosts = [Host(h.name, Endpoint(h.address, 22, "root", lab.identity_file)) for h in lab.hosts]
        connections: list[SshConnection] = []
        started = time.perf_counter()
        one_thread_each(hosts, lambda host: connections.append(factory.connect(host)))
        print(f"{len(connections)} connections opened in {time.perf_counter() - started:.2f} s")
        for runner in RUNNERS.values():
            timed(connections, runner, 1)  # warm-up: imports, first session
        print(f"{options.commands} commands per host on {len(hosts)} hosts at once ({options.commands * len(hosts)} commands):")
        for round_number in range(1, options.repeat + 1):
            for name, runner in RUNNERS.items():
                wall, cpu = timed(connections, runner, options.commands)
                print(f"  round {round_number}  {name:<22} wall {wall:5.2f} s  CPU {cpu:5.2f} s", flush=True)
        for connection in connections:
            connection.close()
        factory.close()
    finally:
        lab.down()


if __name__ == "__main__":
    main()
