"""Benchmark helper (not a test): how the floors (bench/race.py's, bench/audit_floor.py) connect and
run their hosts, on paramiko alone, as a person writing the job on paramiko would. It imports no
ispagent module.

known_hosts is read once per process and each client is given its host's keys: paramiko's own
`load_host_keys` compares each line with every line before it, and done per host it made a floor
pay that square of the file on every host (minutes in all at a thousand hosts).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import paramiko


def known_host_keys(path: str) -> dict[str, list[paramiko.PKey]]:
    """The keys of known_hosts `path`, by the name each host is filed under."""
    keys: dict[str, list[paramiko.PKey]] = {}
    for line in Path(path).read_text().splitlines():
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        if entry is not None:
            for name in entry.hostnames:
                keys.setdefault(name, []).append(entry.key)
    return keys


def connect(known: dict[str, list[paramiko.PKey]], key: paramiko.PKey, address: str) -> paramiko.SSHClient:
    """A client logged in as root to `address` ("ADDRESS" or "ADDRESS:PORT") with `key`; a host key
    known_hosts does not hold for it is refused."""
    host, _, port = address.partition(":")
    name = host if port in ("", "22") else f"[{host}]:{port}"  # as known_hosts files a host
    client = paramiko.SSHClient()
    for known_key in known.get(name, []):
        client.get_host_keys().add(name, known_key.get_name(), known_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((host, int(port or 22)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(
        host,
        port=int(port or 22),
        username="root",
        pkey=key,
        sock=sock,
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
    )
    return client


def output_of(client: paramiko.SSHClient, line: str) -> str:
    """What `line` printed, run on a session of its own; RuntimeError if it exited non-zero."""
    channel = client.get_transport().open_session()
    channel.exec_command(line)
    out = channel.makefile("rb").read().decode()
    status = channel.recv_exit_status()
    channel.close()
    if status != 0:
        raise RuntimeError(f"{line.strip().splitlines()[0][:60]}: exit {status}")
    return out


def on_every_host(addresses: Sequence[str], job: Callable[[str], None], forks: int) -> int:
    """`job(address)` for each address, `forks` at once, a thread each; every failure printed.
    The exit code: 1 if any host failed."""
    todo, failures = list(reversed(addresses)), []

    def worker() -> None:
        while True:
            try:
                address = todo.pop()
            except IndexError:
                return
            try:
                job(address)
            except Exception as error:  # noqa: BLE001 - reported and counted
                failures.append(f"{address}: {error}")

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(forks, len(todo))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures:
        print(failure)
    return 1 if failures else 0
