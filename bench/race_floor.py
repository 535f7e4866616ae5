"""Benchmark helper (not a test): the race's floor, its four-operation job on paramiko alone.

One thread and one connection per host, every host at once (bench/floor_client.py): the command,
the two files over SFTP, the last command. It imports what that job needs and nothing of the
race's harness, which it imported when it ran inside bench/race.py (argparse, statistics, tempfile
and the rest take 18 ms of CPU to import by themselves, some of it modules paramiko imports too),
and no ispagent module.

    python bench/race_floor.py HOSTS.json TOKEN MOTD TEMPLATE    # HOSTS.json: {"hosts", "key", "known_hosts"}
"""

from __future__ import annotations

import sys

# `import paramiko` imports invoke whenever invoke is installed, for one use (an ssh config's
# `Match exec`): 64 ms of CPU on this machine. It is installed here only because the venv holds
# the fabric extra; a venv with paramiko alone has no invoke, and ispagent defers it. The floor
# is paramiko alone.
sys.modules["invoke"] = None  # type: ignore[assignment]

import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import jinja2  # noqa: E402
import paramiko  # noqa: E402
from floor_client import connect, known_host_keys, on_every_host, output_of  # noqa: E402


def floor_run(hosts_file: Path, token: str, motd: Path, template: Path) -> int:
    spec = json.loads(hosts_file.read_text())
    key = paramiko.Ed25519Key.from_private_key_file(spec["key"])
    known = known_host_keys(spec["known_hosts"])
    data, text = motd.read_bytes(), jinja2.Template(template.read_text()).render(greeting="hello").encode()
    target = f"{os.environ.get('RACE_ROOT', '/srv/race')}/{token}"

    def one_host(address: str) -> None:
        client = connect(known, key, address)
        try:
            output_of(client, f"mkdir -p {target} && hostname")
            sftp = client.open_sftp()
            sftp.putfo(io.BytesIO(data), f"{target}/motd", confirm=False)
            sftp.chmod(f"{target}/motd", 0o640)
            sftp.putfo(io.BytesIO(text), f"{target}/hello.conf", confirm=False)
            sftp.close()
            output_of(client, f"sha256sum {target}/hello.conf > {target}/hello.sum")
        finally:
            client.close()

    return on_every_host(spec["hosts"], one_host, forks=len(spec["hosts"]))  # every host at once


if __name__ == "__main__":
    hosts_file, token, motd, template = sys.argv[1:5]
    raise SystemExit(floor_run(Path(hosts_file), token, Path(motd), Path(template)))
