"""Shared fixtures. `lab`: one local lab for the whole session (see agent/lab/)."""

from __future__ import annotations

import os
import time
from typing import Iterator

import pytest

from agent.lab import Lab
from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS

# Hosts in the session's lab. A test that needs more grows the same lab with `lab.up(n)` and
# shrinks it back afterwards (one lab per machine: a second one cannot be started).
LAB_HOSTS = 6
# Another test session on this machine may hold the lab; wait this long for it before failing.
LAB_WAIT_SECONDS = 180


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A running lab of LAB_HOSTS hosts (h1..h6), torn down at the end of the session.

    Teardown also runs after a failed bring-up and on Ctrl-C (pytest tears session fixtures down
    in pytest_sessionfinish). Without root the lab tests are skipped, except under CI=true where
    they fail: a CI job must not pass by skipping its end-to-end tests.
    """
    if os.geteuid() != 0:
        reason = "the lab needs root (network namespaces, mounts): run the lab tests as root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            # In CI a skipped lab would pass the end-to-end tests without running them.
            pytest.fail(f"CI={os.environ['CI']}: the lab cannot start, so its tests would be skipped: {reason}")
        pytest.skip(reason)
    lab = Lab(tmp_path_factory.mktemp("lab"))
    # The lab's partner emulator gets the harness's order gate and admin routes (harness/chaos.py
    # drives them over HTTP); the product's emulator has none of them.
    os.environ[EXTENSIONS_ENV] = LAB_EXTENSIONS
    deadline = time.monotonic() + LAB_WAIT_SECONDS
    while lab.busy_elsewhere() and time.monotonic() < deadline:
        time.sleep(1)
    try:
        lab.up(LAB_HOSTS)  # still busy: fails naming the other lab's dir and how to take it down
        yield lab
    finally:
        lab.down()
