"""`ispagent run` raises its soft limit on open files for the hosts it runs at once: with the common
default of 1024, `--forks 300` would run out of descriptors and report hosts as failed."""

from __future__ import annotations

import resource
import subprocess
import sys

PROBE = """
import resource, sys
from agent.runner.pool import allow_open_files, files_for
allow_open_files(files_for(int(sys.argv[1])))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def soft_limit_after_run(soft: int, hard: int, forks: int) -> int:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(forks)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def test_a_run_raises_the_soft_limit_for_its_forks():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard >= 2000, "this machine's hard limit is too low for the test"
    assert soft_limit_after_run(256, hard, 300) >= 300 * 4


def test_the_soft_limit_stops_at_the_hard_limit():
    assert soft_limit_after_run(256, 900, 300) == 900


def test_a_higher_soft_limit_is_left_alone():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert soft_limit_after_run(1500, hard, 2) == 1500
