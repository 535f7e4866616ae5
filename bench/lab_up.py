"""Time `Lab.up` for 10 / 50 / 100 hosts and `Lab.down` after each (not a test; needs root).

    .venv/bin/python bench/lab_up.py [--sizes 10,50,100] [--repeat 2]

The rootfs is cached first (and not timed). Each size starts from an empty lab.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from agent.lab import Lab, ensure_rootfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    began = time.monotonic()
    ensure_rootfs(progress=print)
    print(f"rootfs ready in {time.monotonic() - began:.2f} s")

    with tempfile.TemporaryDirectory(prefix="ispagent-bench-") as lab_dir:
        lab = Lab(lab_dir)
        try:
            for size in sizes:
                for run in range(1, args.repeat + 1):
                    up = lab.up(size)
                    again = lab.up(size)
                    down = lab.down()
                    print(
                        f"{size:4d} hosts, run {run}: up {up.seconds:6.2f} s"
                        f"  up again (no-op) {again.seconds:5.2f} s  down {down.seconds:5.2f} s"
                    )
        finally:
            lab.down()


if __name__ == "__main__":
    main()
