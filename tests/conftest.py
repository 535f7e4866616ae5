"""Shared fixtures. `lab`: one local lab for the whole session (see agent/lab/)."""

from __future__ import annotations

import gc
import os
import resource
import signal
from collections.abc import Iterator

import pytest
from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS

from agent.lab import Lab

# Hosts in the session's lab. A test that needs more grows the same lab with `lab.up(n)` and
# shrinks it back afterwards. Other labs on the machine (a demo's, another session's) are left
# alone: the session's lab comes up beside them, in a slot of its own.
LAB_HOSTS = 6


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
    try:
        lab.up(LAB_HOSTS)
        yield lab
    finally:
        lab.down()


class Hung(BaseException):
    """Not an OSError: a reader's `except OSError` must not swallow it."""


@pytest.fixture
def no_hang():
    """Fail, instead of waiting for ever, when an open blocks on a FIFO."""

    def hung(*_):
        raise Hung("blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def descriptors_above_1024():
    """More than 1024 open descriptors, so whatever the transport opens next lies above select()'s limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low to go past fd 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    gc.collect()  # sockets of earlier tests' connections, closed now rather than into the holes later
    pipes = []
    try:
        while not pipes or pipes[-1][1] <= 1100:
            pipes.append(os.pipe())
        yield
    finally:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
