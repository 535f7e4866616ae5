"""Benchmark (not a test): what masking costs as a run registers more secrets.

A run registers a secret where one enters (inventory passwords, the partner's credentials, each
server's activation key read from the account), and masks every log line, journal event and report
value it writes. For each count of registered activation keys (--keys), this prints the time to
register them, and the time of one mask() of a host-log line (--line-length characters, no secret
in it: the common case) and of one that holds a key. --checkout measures another source tree (the
code before a change).

    .venv/bin/python bench/masking.py [--keys 0,64,1000,20000] [--checkout TREE]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def per_call_us(function, argument: str, budget: float = 0.3) -> float:
    """Microseconds per call, over as many calls as fit in about `budget` seconds (at least 20)."""
    calls, began = 0, time.perf_counter()
    while calls < 20 or time.perf_counter() - began < budget:
        function(argument)
        calls += 1
    return (time.perf_counter() - began) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="0,64,1000,20000")
    parser.add_argument("--line-length", type=int, default=800)
    parser.add_argument("--checkout", type=Path, default=REPO, help="the ispagent source tree to measure")
    options = parser.parse_args()
    sys.path.insert(0, str(options.checkout))
    secrets = importlib.import_module("agent.secrets")
    print(f"agent.secrets from {secrets.__file__}")
    line = ("facts: hostname h17.lab.example, address 198.18.8.18, release bookworm; " * 20)[: options.line_length]
    for count in (int(n) for n in options.keys.split(",")):
        secrets.forget_secrets()
        keys = [f"{3100000 + n}-{n:024x}" for n in range(count)]
        began = time.perf_counter()
        for key in keys:
            secrets.register_secret(key, refuse_short=False)
        registered = time.perf_counter() - began
        with_key = line[: len(line) // 2] + (keys[-1] if keys else "") + line[len(line) // 2 :]
        assert (keys[-1] not in secrets.mask(with_key)) if keys else True
        print(
            f"{count:>6} keys: registered in {registered:.3f} s; mask() of a {len(line)}-character line "
            f"{per_call_us(secrets.mask, line):8.1f} us, of one holding a key {per_call_us(secrets.mask, with_key):8.1f} us",
            flush=True,
        )


if __name__ == "__main__":
    main()
