"""Benchmark: what one operation costs the hosts' CPU: a subshell, a program, a file write.

Opens one connection and host shell per lab host (50 by default), then every host runs each
operation --ops times at once. For each operation it prints the machine's CPU less this process's,
per operation (the hosts' sshd, shell and programs), this process's own CPU per operation, and the
wall time. Not a test: it gates nothing. Run as root (its lab comes up beside any other):

    .venv/bin/python bench/host_ops.py [--hosts 50] [--ops 20] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from command_runner import lab_connections, measured, one_thread_each  # noqa: E402

from agent.transport import SshConnection  # noqa: E402
from agent.transport.filewrite import put_script  # noqa: E402
from agent.transport.hostshell import printf_format  # noqa: E402

DATA = b"hello world\n" * 20
STAGING = "/tmp/host-ops/staging"
BUILTIN_WRITE = (
    f"umask 077 && set -C && printf '{printf_format(DATA).decode()}' > {STAGING} "
    f"&& chmod 644 {STAGING} && mv -fT {STAGING} /tmp/host-ops/builtin"
)
# name: (shell line, bytes on its stdin)
OPERATIONS: dict[str, tuple[str, bytes | None]] = {
    "a command in a subshell": ("true", None),
    "the same, with bytes on stdin": ("true", DATA),
    "a program": ("/bin/true", None),
    "a file write (install, mv)": (put_script("/tmp/host-ops/put", 0o644), DATA),
    "the bytes by the built-in printf, chmod, mv": (BUILTIN_WRITE, None),
}


def timed(connections: list[SshConnection], line: str, data: bytes | None, count: int) -> tuple[float, float, float]:
    """Wall, this process's CPU and the machine's CPU seconds for `count` runs of `line` on every host at once."""

    def work(connection: SshConnection) -> None:
        for _ in range(count):
            status, _, err = connection.execute(line, 60, data)
            assert status == 0, (connection.host.name, err)

    return measured(connections, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--ops", type=int, default=20, help="runs of each operation per host")
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    with lab_connections(options.hosts) as connections:
        one_thread_each(connections, lambda connection: connection.execute("mkdir -p /tmp/host-ops", 60))
        count = options.ops * len(connections)
        print(f"{options.ops} of each operation on {len(connections)} hosts at once; per operation:")
        for round_number in range(1, options.repeat + 1):
            for name, (line, data) in OPERATIONS.items():
                wall, cpu, machine = timed(connections, line, data, options.ops)
                print(
                    f"  round {round_number}  {name:<44} hosts {1000 * (machine - cpu) / count:5.2f} ms  "
                    f"control node {1000 * cpu / count:5.2f} ms  (wall {wall:5.2f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
