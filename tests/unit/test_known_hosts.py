"""A run's known_hosts: KnownHosts answers for each host what paramiko's HostKeys would, from its own
table (paramiko reads every entry per lookup), and keeps paramiko's answer for hashed names."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import InputError
from agent.transport.hostkeys import KnownHosts

KEYS = [paramiko.ECDSAKey.generate(bits=256) for _ in range(3)] + [paramiko.RSAKey.generate(1024)]
NAMES = ["198.18.0.2", "198.18.0.3", "[198.18.0.2]:2222", "web1.example.com", "h1,198.18.0.9"]


def line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}"


def hashed(name: str) -> str:
    return paramiko.HostKeys.hash_host(name)


def paramiko_answer(path: Path, name: str) -> dict[str, str]:
    found = paramiko.HostKeys(str(path)).lookup(name)
    return {key_type: key.get_base64() for key_type, key in (found or {}).items()}


def ours(known: KnownHosts, name: str) -> dict[str, str]:
    return {key_type: key.get_base64() for key_type, key in known.keys_for(name).items()}


known_hosts_lines = st.lists(
    st.one_of(
        st.builds(line, st.sampled_from(NAMES), st.sampled_from(KEYS)),
        st.sampled_from(
            ["# a comment", "", "garbage", "198.18.0.2 ssh-unknown AAAA", "198.18.0.4 ssh-rsa !!notbase64"]
        ),
    ),
    max_size=12,
)


@given(lines=known_hosts_lines, hash_one=st.booleans())
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_each_host_gets_the_keys_paramiko_would_give_it(tmp_path: Path, lines: list[str], hash_one: bool):
    if hash_one and lines:
        lines = [*lines, line(hashed("198.18.0.3"), KEYS[2])]
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    try:
        paramiko.HostKeys(str(path))
    except paramiko.hostkeys.InvalidHostKey:
        with pytest.raises(InputError, match=r"line \d+: the key is not valid base64"):
            KnownHosts(path)
        return
    known = KnownHosts(path)
    for name in {"198.18.0.2", "198.18.0.3", "[198.18.0.2]:2222", "web1.example.com", "h1", "198.18.0.9", "none"}:
        assert ours(known, name) == paramiko_answer(path, name), name


def test_a_key_remembered_is_given_at_once_and_written_to_the_file(tmp_path: Path):
    path = tmp_path / "known_hosts"
    path.write_text(line("198.18.0.2", KEYS[0]) + "\n")
    known = KnownHosts(path, policy="accept-new")
    known.remember("198.18.0.5", KEYS[1])
    assert ours(known, "198.18.0.5") == {KEYS[1].get_name(): KEYS[1].get_base64()}
    assert paramiko_answer(path, "198.18.0.5") == ours(known, "198.18.0.5")
    assert ours(known, "198.18.0.2") == {KEYS[0].get_name(): KEYS[0].get_base64()}


@pytest.mark.parametrize("hash_names", [False, True], ids=["plain", "hashed"])
def test_a_thousand_hosts_each_get_their_own_key(tmp_path: Path, hash_names: bool):
    path = tmp_path / "known_hosts"
    names = [f"198.18.{index // 250}.{index % 250 + 2}" for index in range(1000)]
    keys = [KEYS[index % 3] for index in range(1000)]
    path.write_text("".join(line(hashed(n) if hash_names else n, k) + "\n" for n, k in zip(names, keys)))
    known = KnownHosts(path)
    for name, key in zip(names[::97], keys[::97]):
        assert ours(known, name) == {key.get_name(): key.get_base64()}
    assert known.keys_for("198.18.9.9") == {}
