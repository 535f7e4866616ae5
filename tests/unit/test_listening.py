"""The probes' reading of a host's listening sockets, run for real by this machine's /bin/sh against
its own sockets: `ss` where there is one, /proc/net/tcp{,6} where there is not, the same answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.panel.listening import (
    LISTENING_SOCKETS,
    listening_sockets,
    port_listening_function,
    proc_socket_url,
    ss_socket_url,
    url_port,
)


@pytest.fixture
def listeners() -> Iterator[list[str]]:
    """Sockets listening on IPv4 loopback and any, IPv6 loopback, and IPv6 any in dual stack (ss: `*`)."""
    made, urls = [], []
    for family, address, v6only, shown in [
        (socket.AF_INET, "127.0.0.1", None, "127.0.0.1"),
        (socket.AF_INET, "0.0.0.0", None, "0.0.0.0"),
        (socket.AF_INET6, "::1", 1, "[::1]"),
        (socket.AF_INET6, "::", 0, "[::]"),
    ]:
        listener = socket.socket(family)
        if v6only is not None:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        try:
            listener.bind((address, 0))
        except OSError:
            listener.close()
            continue  # no IPv6 on this machine
        listener.listen()
        made.append(listener)
        urls.append(f"tcp://{shown}:{listener.getsockname()[1]}")
    yield urls
    for listener in made:
        listener.close()


def without_ss(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has every command the scripts use but `ss`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("sleep",):
        os.symlink(shutil.which(command) or f"/bin/{command}", bin_dir / command)
    return {**os.environ, "PATH": str(bin_dir)}


def run_sh(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.skipif(not shutil.which("ss"), reason="needs ss (iproute2)")
def test_ss_and_proc_net_tcp_read_the_same_listening_sockets(listeners: list[str], tmp_path: Path):
    from_ss = run_sh(LISTENING_SOCKETS)
    from_proc = run_sh(LISTENING_SOCKETS, without_ss(tmp_path))
    assert "listen.ss.done" in from_ss.stdout.splitlines()  # ss answered: no /proc walk
    assert "listen.ss.done" not in from_proc.stdout.splitlines()
    read_by_ss = listening_sockets(from_ss.stdout.splitlines())
    read_from_proc = listening_sockets(from_proc.stdout.splitlines())
    assert set(listeners) <= set(read_by_ss)
    assert sorted(read_by_ss) == sorted(read_from_proc)


@pytest.mark.skipif(not shutil.which("ss"), reason="needs ss (iproute2)")
@pytest.mark.parametrize("with_ss", [True, False], ids=["ss", "proc"])
def test_port_listening_function_tells_an_open_port_from_a_closed_one(with_ss: bool, tmp_path: Path):
    env = None if with_ss else without_ss(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        assert run_sh(port_listening_function(port) + "listening", env).returncode == 0
    finally:
        listener.close()
    assert run_sh(port_listening_function(port) + "listening", env).returncode == 1


def test_ss_lines_become_urls_of_each_address_form():
    assert ss_socket_url("0      5            0.0.0.0:1500      0.0.0.0:*") == "tcp://0.0.0.0:1500"
    assert ss_socket_url("0      128             [::]:22           [::]:*") == "tcp://[::]:22"
    assert ss_socket_url("0      128                *:22              *:*") == "tcp://[::]:22"
    assert ss_socket_url("0      4096   127.0.0.53%lo:53        0.0.0.0:*") == "tcp://127.0.0.53:53"
    assert ss_socket_url("0      5     [fe80::1]%eth0:22           [::]:*") == "tcp://[fe80::1]:22"
    assert ss_socket_url("0 5 not-an-address 0.0.0.0:*") == "tcp://not-an-address"
    assert proc_socket_url("0100007F:05DC") == "tcp://127.0.0.1:1500"
    assert proc_socket_url("00000000000000000000000001000000:0016") == "tcp://[::1]:22"


def test_an_ss_that_failed_part_way_counts_for_nothing_and_proc_answers():
    lines = ["listen.ss", "0 5 0.0.0.0:1500 0.0.0.0:*", "listen=0100007F:0016", "license_rc=0"]
    assert listening_sockets(lines) == ("tcp://127.0.0.1:22",)
    assert listening_sockets(["listen.ss", "listen.ss.done"]) == ()  # ss answered: nothing listens


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60), max_size=12))
def test_any_host_output_reads_as_urls_without_raising(lines: list[str]):
    for url in listening_sockets(["listen.ss", *lines, "listen.ss.done"]) + listening_sockets(lines):
        assert url.startswith("tcp://")
        port = url_port(url)
        assert port is None or port >= 0
