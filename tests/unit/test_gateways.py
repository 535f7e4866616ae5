"""Gateways as users write them: ProxyJump chains and ProxyCommand, from the inventory and ssh config.

The inventory side (what is read, what is refused, how tokens are quoted) and the ProxyCommand socket
with real commands; the lab tests (tests/lab/test_gateways_on_lab.py) reach real hosts through them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness import mutations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labkit import wait_until

from agent.errors import HostUnreachable, InputError, InventoryError
from agent.inventory import Endpoint, load_inventory
from agent.inventory.addresses import is_address, parse_jump_chain
from agent.inventory.loader import MAX_JUMPS
from agent.inventory.model import Host, SshSettings
from agent.inventory.proxycommand import ProxyCommandError, TokenValues, check_proxy_command, expand_proxy_command
from agent.transport import SshConnector

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventory.example.yaml"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(directory: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, inventory: str, ssh_config: str = ""):
    config = write(tmp_path, ssh_config, "ssh_config")
    return load_inventory(write(tmp_path, inventory), ssh_config=config)


def refusal(tmp_path: Path, inventory: str, ssh_config: str = "") -> str:
    with pytest.raises(InventoryError) as raised:
        load(tmp_path, inventory, ssh_config)
    return str(raised.value).removeprefix(f"{tmp_path}/")


# --- chains


def test_the_shipped_example_has_a_two_hop_chain_and_a_proxy_command() -> None:
    example = load_inventory(EXAMPLE, ssh_config=Path("/dev/null"))
    db2, db3 = example.host("db2"), example.host("db3")
    assert db2.gateway.jumps() == (
        Endpoint("bastion.example.com", 2222, "jump"),
        Endpoint("10.0.0.1", 22, "root", via=Endpoint("bastion.example.com", 2222, "jump")),
    )
    assert db3.gateway is None and db3.endpoint.proxy_command == "ssh -W 10.2.0.5:22 -l jump bastion.example.com"


def test_a_chain_as_a_string_and_as_a_list_are_the_same_chain(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """\
        defaults: {user: deploy}
        hosts:
          a: {address: 10.0.0.5, gateway: "jump@bastion.example.com:2222,[2001:db8::1]:2200,10.9.0.1"}
          b:
            address: 10.0.0.6
            gateway: [jump@bastion.example.com:2222, {address: "2001:db8::1", port: 2200}, 10.9.0.1]
        """,
    )
    a, b = inventory.hosts
    assert [str(hop) for hop in a.gateway.jumps()] == [
        "jump@bastion.example.com:2222", "deploy@2001:db8::1:2200", "deploy@10.9.0.1:22",
    ]  # fmt: skip
    assert a.gateway == b.gateway and a.gateway.via.via.via is None


def test_ssh_config_proxy_jump_chain_resolves_each_hop_through_ssh_config(tmp_path: Path) -> None:
    (tmp_path / "hop_key").write_text("key")
    inventory = load(
        tmp_path,
        "hosts: {web1: {}}\n",
        f"""\
        Host web1
          HostName 10.0.0.5
          ProxyJump hop1,admin@hop2:2022
        Host hop1
          HostName 203.0.113.1
          User first
          IdentityFile {tmp_path}/hop_key
        Host hop2
          HostName 203.0.113.2
        """,
    )
    first, second = inventory.hosts[0].gateway.jumps()
    assert first == Endpoint("203.0.113.1", 22, "first", ssh_config_keys=(tmp_path / "hop_key",))
    assert second == Endpoint("203.0.113.2", 2022, "admin", None, via=first)


def test_the_first_hop_follows_its_own_proxy_jump_and_a_loop_is_refused(tmp_path: Path) -> None:
    config = """\
        Host 10.0.0.5
          ProxyJump inner.example.com
        Host inner.example.com
          ProxyJump outer.example.com
        """
    hops = load(tmp_path, "hosts: {web1: {address: 10.0.0.5}}\n", config).hosts[0].gateway.jumps()
    assert [hop.address for hop in hops] == ["outer.example.com", "inner.example.com"]
    looping = config + "Host outer.example.com\n  ProxyJump inner.example.com\n"
    assert refusal(tmp_path, "hosts: {web1: {address: 10.0.0.5}}\n", looping) == (
        f"inventory.yaml:1: hosts.web1: more than {MAX_JUMPS} jump hosts in front of it; "
        "look for a ProxyJump loop in ssh config"
    )


def test_a_first_hop_behind_its_own_proxy_command_in_ssh_config(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        "hosts: {web1: {address: 10.0.0.5, gateway: 'edge,10.0.0.1'}}\n",
        """\
        Host edge
          HostName 203.0.113.9
          ProxyCommand cloudflared access ssh --hostname %n --port %p
        """,
    )
    first, second = inventory.hosts[0].gateway.jumps()
    assert first.proxy_command == "cloudflared access ssh --hostname edge --port 22" and first.via is None
    assert second.via == first and second.proxy_command is None


def test_the_host_entry_beats_ssh_config_which_beats_defaults(tmp_path: Path) -> None:
    inventory = load(
        tmp_path,
        """\
        defaults: {gateway: defaults.example.com}
        hosts:
          own: {address: 10.0.0.5, proxy_command: "nc %h %p"}
          config: {address: 10.0.0.6}
          default: {address: 10.0.0.7}
          off: {address: 10.0.0.6, port: 2222, proxy_command: none}
        """,
        "Host 10.0.0.6\n  ProxyCommand ssh -W %h:%p cfg.example.com\n",
    )
    own, config, default, off = inventory.hosts
    assert own.endpoint.proxy_command == "nc 10.0.0.5 22" and own.gateway is None
    assert config.endpoint.proxy_command == "ssh -W 10.0.0.6:22 cfg.example.com"
    assert default.gateway == Endpoint("defaults.example.com") and default.endpoint.proxy_command is None
    assert off.gateway is None and off.endpoint.proxy_command is None


@pytest.mark.parametrize(("inventory", "ssh_config", "expected"), [
    ("hosts: {web1: {address: 10.0.0.5, gateway: 'a.example.com,,b.example.com'}}\n", "",
     "inventory.yaml:1: hosts.web1.gateway: 'a.example.com,,b.example.com' is not a valid gateway; write host, "
     "user@host or user@host:port (IPv6 as [2001:db8::1]), comma-separated for a chain, or a mapping with address, "
     "port, user"),
    ("hosts: {web1: {address: 10.0.0.5, gateway: []}}\n", "",
     "inventory.yaml:1: hosts.web1.gateway: the gateway list is empty; name the jump hosts, the first hop first, "
     "or write none"),
    ("hosts: {web1: {address: 10.0.0.5, gateway: [a.example.com, 'b c']}}\n", "",
     "inventory.yaml:1: hosts.web1.gateway: 'b c' is not a valid jump host; write host, user@host or user@host:port"),
    ("hosts: {web1: {address: 10.0.0.5, gateway: '" + ",".join(["h.example.com"] * 11) + "'}}\n", "",
     "inventory.yaml:1: hosts.web1.gateway: 11 jump hosts: at most 10 are taken"),
    ("hosts: {web1: {address: 10.0.0.5, gateway: a.example.com, proxy_command: nc %h %p}}\n", "",
     "inventory.yaml:1: hosts.web1.proxy_command: gateway and proxy_command are both set; keep one: ssh, too, takes "
     "either ProxyJump or ProxyCommand"),
    ("hosts: {web1: {address: 10.0.0.5, proxy_command: 'nc %h %d'}}\n", "",
     "inventory.yaml:1: hosts.web1.proxy_command: the proxy command has %d: the tokens are %h %p %r %n, and %% for a "
     "%; write a shell command as for ssh's ProxyCommand, e.g. ssh -W %h:%p bastion"),
    ("hosts: {web1: {address: 10.0.0.5}}\n", "Host *\n  ProxyCommand nc '%h %p\n",
     "inventory.yaml:1: hosts.web1: ProxyCommand from {config} has a ' that is not closed; write a shell command as "
     "for ssh's ProxyCommand, e.g. ssh -W %h:%p bastion"),
    ("hosts: {web1: {address: 10.0.0.5}}\n", "Host *\n  ProxyCommand nc %h %p\n  ProxyJump b.example.com\n",
     "inventory.yaml:1: hosts.web1: both ProxyJump and ProxyCommand in {config} apply; keep one there, or set "
     "gateway: or proxy_command: on the host"),
])  # fmt: skip
def test_a_bad_route_is_one_line_naming_its_place(tmp_path: Path, inventory: str, ssh_config: str, expected: str):
    message = refusal(tmp_path, inventory, ssh_config)
    assert message == expected.replace("{config}", str(tmp_path / "ssh_config"))


def test_the_same_private_address_behind_different_chains_is_two_hosts(tmp_path: Path) -> None:
    hosts = load(
        tmp_path,
        """\
        hosts:
          a: {address: 10.0.0.5, gateway: "b1.example.com,10.0.0.1"}
          b: {address: 10.0.0.5, gateway: "b2.example.com,10.0.0.1"}
          c: {address: 10.0.0.5, proxy_command: "nc %h %p"}
        """,
    ).hosts
    assert len(hosts) == 3
    assert "same address and port as host a" in refusal(
        tmp_path,
        """\
        hosts:
          a: {address: 10.0.0.5, gateway: "b1.example.com,10.0.0.1"}
          b: {address: 10.0.0.5, gateway: [b1.example.com, 10.0.0.1]}
        """,
    )


# --- ProxyCommand tokens


def test_tokens_are_expanded_as_openssh_names_them() -> None:
    values = TokenValues("2001:db8::5", 2222, "deploy", "web1")
    line = expand_proxy_command("ssh -W [%h]:%p -l %r gw # %n 100%%", values)
    assert line == "ssh -W [2001:db8::5]:2222 -l deploy gw # web1 100%"


# Every place a token can stand that the quoting knows; each template prints the value alone.
PRINTING_TEMPLATES = [
    "printf '%%s\\n' %r",
    "printf '%%s\\n' '%r'",
    "printf '%%s\\n' \"%r\"",
    "printf '%%s\\n' \"$(printf '%%s' %r)\"",
    "printf '%%s\\n' \"$(printf '%%s' \"%r\")\"",
    "exec printf '%%s\\n' ''%r\"\"",
]


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(PRINTING_TEMPLATES),
    # No NUL (no shell argument holds one) and no line break: $(...) drops trailing ones, as shells do.
    user=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"), max_size=20),
)
def test_a_token_value_reaches_the_command_as_one_literal_word_wherever_it_stands(template: str, user: str):
    line = expand_proxy_command(template, TokenValues("192.0.2.1", 22, user, "web1"))
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, timeout=10)
    assert done.stdout == (user + "\n").encode(), line


@pytest.mark.parametrize(("text", "problem"), [
    ("nc \\%h %p", "has a backslash right before a % token"),
    ("nc `echo %h` %p", "has %h inside backquotes: write $(...) instead"),
    ("nc %h %p)", """is not a command /bin/sh can read ('1: Syntax error: ")" unexpected')"""),
    ("nc %h %p <<", "is not a command /bin/sh can read ('1: Syntax error: end of file unexpected')"),
    ("nc %h %p |", "is not a command /bin/sh can read ('1: Syntax error: end of file unexpected')"),
    ("nc %h %p | tee /dev/null", None),
    ("nc $(echo %h %p", "has a $( that is not closed"),
    ('nc "%h %p', 'has a " that is not closed'),
    ("nc %h %p\n", "holds a line break or control character"),
    ("nc %h 100%", "has a lone %: the tokens are %h %p %r %n, and %% for a %"),
    ("  ", "is empty"),
])  # fmt: skip
def test_what_the_quoting_cannot_follow_is_refused(text: str, problem: str | None) -> None:
    if problem is None:
        check_proxy_command(text)
        return
    with pytest.raises(ProxyCommandError) as raised:
        check_proxy_command(text)
    assert str(raised.value) == problem


# --- mutations of the shipped examples (the harness's one mutator)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, original: bytes, kind: str) -> bytes:
    return mutations.mutated(draw(st.randoms(use_true_random=False)), original, kind, 256 * 1024)


def _check_route(host: Host) -> None:
    """What every accepted host's route must be: checked hops, a bounded chain, a command sh can parse."""
    hops = host.gateway.jumps() if host.gateway else ()
    assert len(hops) <= MAX_JUMPS
    for endpoint in (*hops, host.endpoint):
        assert is_address(endpoint.address) and 1 <= endpoint.port <= 65535
        if endpoint.proxy_command is not None:
            assert endpoint.proxy_command.isprintable()
            parsed = subprocess.run(
                ["/bin/sh", "-n", "-c", f"exec {endpoint.proxy_command}"], capture_output=True, timeout=10
            )
            assert parsed.returncode == 0, endpoint.proxy_command


GATEWAY_LINES = [
    line for line in EXAMPLE.read_bytes().splitlines(keepends=True) if b"gateway:" in line or b"proxy_command:" in line
]


@PROPERTY
@given(data=st.data())
def test_a_mutated_example_inventory_loads_with_checked_routes_or_is_one_line(tmp_path_factory, data) -> None:
    # The gateway lines are where the mutations go half of the time: the rest of the file is fuzzed elsewhere.
    original = EXAMPLE.read_bytes().replace(b"198.18.0.2", b"127.0.0.1")
    if data.draw(st.booleans()):
        line = data.draw(st.sampled_from(GATEWAY_LINES))
        original = original.replace(line, data.draw(mutated(line, "inventory")), 1)
    directory = tmp_path_factory.mktemp("case")
    path = directory / "inventory.yaml"
    path.write_bytes(data.draw(mutated(original, "inventory")))
    try:
        inventory = load_inventory(path, ssh_config=Path("/dev/null"))
    except InputError as error:
        assert len(str(error).splitlines()) == 1
        return
    for host in inventory.hosts:
        _check_route(host)


SSH_CONFIG_EXAMPLE = b"""\
Host web1
  HostName 10.0.0.5
  ProxyJump jump@bastion.example.com:2222,10.0.0.1
Host 10.0.0.1
  User inner
Host db3
  HostName 10.2.0.5
  ProxyCommand ssh -W %h:%p -l jump bastion.example.com
"""


@PROPERTY
@given(config=mutated(SSH_CONFIG_EXAMPLE, "vagrant"))
def test_a_mutated_ssh_config_gives_checked_routes_or_one_line(tmp_path_factory, config: bytes) -> None:
    directory = tmp_path_factory.mktemp("case")
    (directory / "ssh_config").write_bytes(config)
    (directory / "inventory.yaml").write_text("hosts: {web1: {}, db3: {}}\n")
    try:
        inventory = load_inventory(directory / "inventory.yaml", ssh_config=directory / "ssh_config")
    except InputError as error:
        assert len(str(error).splitlines()) == 1
        return
    for host in inventory.hosts:
        _check_route(host)


@settings(max_examples=200, deadline=None)
@given(
    text=st.sampled_from(["jump@bastion.example.com:2222,10.0.0.1", "a.example.com,b.example.com"]).flatmap(
        lambda original: st.randoms(use_true_random=False).map(
            lambda rng: mutations.mutated(rng, original.encode(), "inventory", 1024).decode(errors="replace")
        )
    )
)
def test_a_parsed_chain_has_only_checked_hops(text: str) -> None:
    chain = parse_jump_chain(text)
    if chain is not None:
        assert len(chain) == text.count(",") + 1
        assert all(is_address(hop.address) and (hop.port is None or 1 <= hop.port <= 65535) for hop in chain)


# --- the ProxyCommand socket, with real commands


def _proxied(command: str) -> Host:
    return Host("web1", Endpoint("10.0.0.5", proxy_command=command))


def test_a_failing_proxy_command_is_one_line_with_its_status_and_last_words(monkeypatch) -> None:
    monkeypatch.setattr("agent.transport.ssh.RETRY_BASE_DELAY", 0.01)
    connector = SshConnector(SshSettings(known_hosts=None, connect_timeout=2))
    with pytest.raises(HostUnreachable) as raised:
        connector.connect(
            _proxied("""sh -c 'echo "nc: connect to 10.0.0.5 port 22 (tcp) failed: No route" >&2; exit 3'""")
        )
    assert str(raised.value) == (
        "cannot connect to root@10.0.0.5:22: the ProxyCommand exited with status 3: "
        "nc: connect to 10.0.0.5 port 22 (tcp) failed: No route (3 attempts)"
    )


def test_a_hanging_proxy_command_times_out_in_one_line_and_is_ended(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("agent.transport.ssh.RETRY_BASE_DELAY", 0.01)
    pids = tmp_path / "pids"
    connector = SshConnector(SshSettings(known_hosts=None, connect_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as raised:
        # The child of the shell must go too: the whole process group is ended.
        connector.connect(_proxied(f"sleep 60 & echo $! >> {pids}; wait"))
    assert time.monotonic() - started < 10
    assert str(raised.value) == (
        "cannot connect to root@10.0.0.5:22: no SSH server answered through the ProxyCommand within 0.5 s (3 attempts)"
    )
    for pid in pids.read_text().split():
        # A signalled process still runs for the moment its exit takes; under load that moment is long.
        wait_until(lambda: _ended(int(pid)), what=f"the end of the ProxyCommand's child {pid}", timeout=5)


def _ended(pid: int) -> bool:
    """The process is gone, or a zombie."""
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True


def test_the_cli_ends_a_host_whose_proxy_command_fails_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    inventory = write(
        tmp_path,
        """\
        ssh: {known_hosts: known_hosts, connect_timeout: 1}
        defaults: {vars: {edition: lite, period: monthly, release: stable}}
        hosts:
          web1: {address: 10.0.0.5, proxy_command: "sh -c 'echo ssh: Could not resolve hostname gw >&2; exit 255'"}
        """,
    )
    playbook = write(tmp_path, "name: facts\nsteps: [facts]\n", "facts.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(playbook), "-i", str(inventory)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "ISPAGENT_STATE_DIR": str(tmp_path)},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    reason = (
        "cannot connect to root@10.0.0.5:22: the ProxyCommand exited with status 255: "
        "ssh: Could not resolve hostname gw (3 attempts)"
    )
    lines = [line for line in output.splitlines() if "ProxyCommand" in line]
    assert lines[0] == f"web1: => unreachable: {reason}"  # the progress line, then the summary's row
    assert len(lines) == 2 and lines[1].split() == ["web1", "unreachable", "-", *reason.split()]
