"""Opening connections is paced: however many hosts run at once, at most MAX_HANDSHAKES handshakes
are in flight, so a large run's own burst does not time hosts out; a server too slow to answer
authentication is tried again, as a connection timeout is, and is not reported as a wrong key."""

from __future__ import annotations

import threading
import time

import paramiko
import pytest

from agent.errors import HostUnreachable
from agent.inventory.model import Endpoint, SshSettings
from agent.transport import ssh


def test_no_more_than_max_handshakes_are_in_flight(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "MAX_HANDSHAKES", 4)
    factory = ssh.SshConnector(SshSettings(known_hosts=tmp_path / "known_hosts"))
    in_flight, most, lock = 0, 0, threading.Lock()

    def slow_handshake(endpoint, gateway):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return endpoint

    monkeypatch.setattr(factory, "_handshake", slow_handshake)
    endpoints = [Endpoint(f"198.18.0.{n}", 22, "root", None) for n in range(2, 42)]
    threads = [threading.Thread(target=factory._open_once, args=(endpoint, None)) for endpoint in endpoints]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 4


def handshakes_that_fail(monkeypatch, factory, failures: list[Exception]) -> list[Endpoint]:
    """`factory`'s handshakes raise `failures` in turn, then succeed; returns the endpoints tried."""
    tried: list[Endpoint] = []

    def handshake(endpoint, gateway):
        tried.append(endpoint)
        if failures:
            raise failures.pop(0)
        return endpoint

    monkeypatch.setattr(factory, "_handshake", handshake)
    monkeypatch.setattr(ssh, "RETRY_BASE_DELAY", 0.001)
    return tried


def test_a_server_too_slow_to_answer_authentication_is_tried_again(tmp_path, monkeypatch):
    factory = ssh.SshConnector(SshSettings(known_hosts=tmp_path / "known_hosts"))
    timeout = paramiko.AuthenticationException("Authentication timeout.")  # what paramiko raises then
    tried = handshakes_that_fail(monkeypatch, factory, [timeout, timeout])
    endpoint = Endpoint("198.18.0.2", 22, "root", None)
    assert factory.open_connection(endpoint) == endpoint
    assert len(tried) == 3


def test_an_authentication_timeout_is_not_reported_as_a_wrong_key(tmp_path, monkeypatch):
    factory = ssh.SshConnector(SshSettings(known_hosts=tmp_path / "known_hosts"))
    timeouts = [paramiko.AuthenticationException("Authentication timeout.") for _ in range(ssh.CONNECT_ATTEMPTS)]
    handshakes_that_fail(monkeypatch, factory, timeouts)
    with pytest.raises(HostUnreachable) as raised:
        factory.open_connection(Endpoint("198.18.0.2", 22, "root", None))
    assert "no answer to authentication in time (3 attempts)" in str(raised.value)
    assert "check user and identity_file" not in str(raised.value)


def test_a_refused_key_is_not_tried_again(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no default key files
    factory = ssh.SshConnector(SshSettings(known_hosts=tmp_path / "known_hosts"))
    tried = handshakes_that_fail(monkeypatch, factory, [paramiko.AuthenticationException("Authentication failed.")])
    with pytest.raises(
        HostUnreachable,
        match=r"authentication failed with ssh-agent keys only \(no ~/.ssh/id_rsa, id_ecdsa or id_ed25519\): "
        "check user and identity_file",
    ):
        factory.open_connection(Endpoint("198.18.0.2", 22, "root", None))
    assert len(tried) == 1
