"""Benchmark: opening connections directly, through a two-hop ProxyJump chain, and over a ProxyCommand.

Brings up a lab (h1 and h2 are the hops, the rest the targets), then for --repeat rounds opens and
closes one connection to every target each way, the three ways in turn so that load from elsewhere
hits them alike, and prints each way's median seconds per host. A new connector every round: the
chain's hops are opened once per round, as once per run. Not a test: it gates nothing.
Run as root, under the machine's lab lock:

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/gateways.py [--hosts 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.inventory.model import Endpoint, Host, SshSettings  # noqa: E402
from agent.lab import Lab  # noqa: E402
from agent.transport import SshConnector  # noqa: E402


def _ways(lab: Lab) -> dict[str, list[Host]]:
    first, second, *targets = lab.hosts
    key = lab.identity_file
    hop1 = Endpoint(first.address, 22, "root", key)
    hop2 = Endpoint(second.address, 22, "root", key, via=hop1)
    ssh_w = (
        f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={lab.known_hosts_path} "
        f"-o StrictHostKeyChecking=yes -W {{address}}:22 root@{first.address}"
    )
    direct = [Host(t.name, Endpoint(t.address, 22, "root", key)) for t in targets]
    return {
        "direct": direct,
        "chain h1,h2": [replace(host, gateway=hop2) for host in direct],
        "ProxyCommand ssh -W": [
            replace(host, endpoint=replace(host.endpoint, proxy_command=ssh_w.format(address=host.address)))
            for host in direct
        ],
    }


def _round(lab: Lab, hosts: list[Host]) -> float:
    """Seconds per host to open, use once and close a connection to each of `hosts`, one after another."""
    connector = SshConnector(SshSettings(known_hosts=lab.known_hosts_path))
    started = time.perf_counter()
    try:
        for host in hosts:
            connection = connector.connect(host)
            assert connection.run("true").ok
            connection.close()
    finally:
        connector.close()
    return (time.perf_counter() - started) / len(hosts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8, help="lab hosts, the two hops included")
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-bench-")) / "lab")
    try:
        lab.up(options.hosts)
        ways = _ways(lab)
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(options.repeat):
            for name, hosts in ways.items():
                seconds[name].append(_round(lab, hosts))
    finally:
        lab.down()
    print(f"{options.hosts - 2} targets, {options.repeat} rounds: seconds per host to connect, run `true`, close")
    for name, figures in seconds.items():
        print(f"  {name:22} median {statistics.median(figures):.4f}  (min {min(figures):.4f}, max {max(figures):.4f})")


if __name__ == "__main__":
    main()
