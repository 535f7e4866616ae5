"""A run's known_hosts: KnownHosts answers for each host what paramiko's HostKeys would, from its own
table (paramiko reads every entry per lookup), and keeps paramiko's answer for hashed names."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import HostKeyMismatch, InputError
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


# OpenSSH's markers (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): paramiko reads neither, and raised on both.
def test_marked_lines_are_read_a_revoked_key_is_given_to_no_host_and_a_ca_line_is_passed_over(tmp_path: Path):
    path = tmp_path / "known_hosts"
    path.write_text(
        "\n".join(
            [
                f"@cert-authority *.example.com {KEYS[3].get_name()} {KEYS[3].get_base64()}",
                line("198.18.0.2", KEYS[0]),
                f"@revoked * {KEYS[1].get_name()} {KEYS[1].get_base64()}",
                line("198.18.0.3", KEYS[1]),  # revoked: given to no host, whatever line names it
                line(hashed("198.18.0.4"), KEYS[1]),
                line(hashed("198.18.0.5"), KEYS[2]),
            ]
        )
        + "\n"
    )
    known = KnownHosts(path)
    assert ours(known, "198.18.0.2") == {KEYS[0].get_name(): KEYS[0].get_base64()}
    assert ours(known, "198.18.0.3") == ours(known, "198.18.0.4") == ours(known, "web.example.com") == {}
    assert ours(known, "198.18.0.5") == {KEYS[2].get_name(): KEYS[2].get_base64()}
    assert known.is_revoked(KEYS[1]) and not known.is_revoked(KEYS[0])


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_a_revoked_key_is_refused_under_every_policy_and_never_recorded(tmp_path: Path, policy: str):
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked 198.18.0.7 {KEYS[1].get_name()} {KEYS[1].get_base64()}\n")
    known = KnownHosts(path, policy=policy)
    with pytest.raises(HostKeyMismatch, match=r"198.18.0.7: host key .* is revoked \(@revoked in "):
        known.missing_key_policy().missing_host_key(paramiko.SSHClient(), "198.18.0.7", KEYS[1])
    assert ours(known, "198.18.0.7") == {}
    assert path.read_text().count("\n") == 1
    if policy == "accept-new":  # another key for that host is new, not revoked
        known.missing_key_policy().missing_host_key(paramiko.SSHClient(), "198.18.0.7", KEYS[0])
        assert ours(known, "198.18.0.7") == {KEYS[0].get_name(): KEYS[0].get_base64()}


marked_lines = st.lists(
    st.one_of(
        st.builds(line, st.sampled_from(NAMES), st.sampled_from(KEYS)),
        st.builds(
            lambda names, key: "@revoked " + line(names, key), st.sampled_from([*NAMES, "*"]), st.sampled_from(KEYS)
        ),
        st.builds(
            lambda key: "@cert-authority *.example.com " + line("x", key).split(" ", 1)[1], st.sampled_from(KEYS)
        ),
        st.sampled_from(["# a comment", "", "garbage", "@revoked", "@unknown-marker 198.18.0.2 ssh-rsa AAAA"]),
    ),
    max_size=12,
)


@given(lines=marked_lines, hash_one=st.booleans())
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_with_markers_each_host_gets_what_paramiko_gives_for_the_unmarked_lines_less_the_revoked_keys(
    tmp_path: Path, lines: list[str], hash_one: bool
):
    if hash_one:
        lines = [*lines, line(hashed("198.18.0.3"), KEYS[2])]
    path, unmarked = tmp_path / "known_hosts", tmp_path / "unmarked"
    path.write_text("\n".join(lines) + "\n")
    revoked = {text.split()[-1] for text in lines if text.startswith("@revoked ") and len(text.split()) == 4}
    kept = [
        text
        for text in lines
        if not text.startswith("@") and text.split()[-1:] != [] and text.split()[-1] not in revoked
    ]
    unmarked.write_text("\n".join(kept) + "\n")
    known = KnownHosts(path)
    for name in {"198.18.0.2", "198.18.0.3", "[198.18.0.2]:2222", "web1.example.com", "h1", "198.18.0.9", "none"}:
        assert ours(known, name) == paramiko_answer(unmarked, name), name
