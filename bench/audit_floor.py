"""Benchmark helper (not a test): the nightly audit's floor, the audit's own host work done on paramiko directly.

Per host (`forks` at once, each in a thread of its own): one connection (bench/floor_client.py),
then the three probe programs the audit sends (facts, preflight given facts' address, verify given
preflight's license.info), each by exec_command on a session of its own, and their answers read.
No ispagent module is imported here: bench/cheap_audit.py writes the programs into the spec file,
so this process costs what paramiko and the host's work cost, and nothing of ispagent's.

    python bench/audit_floor.py SPEC.json    # {"hosts", "forks", "key", "known_hosts", "facts", "preflight", "verify"}

The preflight program holds IPV4_MARK where it takes facts' address (quoted), as the audit's does.
Exit 1 and a line per host if any host failed or answered differently from a clean audit.
"""

from __future__ import annotations

import sys

sys.modules["invoke"] = None  # type: ignore[assignment]  # paramiko alone: see bench/race_floor.py

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import paramiko  # noqa: E402
from floor_client import connect, known_host_keys, on_every_host, output_of  # noqa: E402

IPV4_MARK = "ispagent-floor-primary-ipv4"


def audit_host(known: dict[str, list[paramiko.PKey]], spec: dict, key: paramiko.PKey, address: str) -> None:
    client = connect(known, key, address)
    try:
        facts = output_of(client, spec["facts"])
        ipv4 = next(line[13:] for line in facts.splitlines() if line.startswith("primary_ipv4="))
        preflight = output_of(client, spec["preflight"].replace(IPV4_MARK, ipv4))
        if "probe=short" not in preflight.splitlines():
            raise RuntimeError("preflight judged the host: not a clean, installed one")
        if "probe=done" not in output_of(client, spec["verify"]).splitlines():
            raise RuntimeError("verify's probe was cut short")
    finally:
        client.close()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    key = paramiko.Ed25519Key.from_private_key_file(spec["key"])
    known = known_host_keys(spec["known_hosts"])
    return on_every_host(spec["hosts"], lambda address: audit_host(known, spec, key, address), spec["forks"])


if __name__ == "__main__":
    raise SystemExit(main())
