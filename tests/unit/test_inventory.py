"""Inventory loading: every bad inventory gives one exact line; good ones resolve as documented."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.errors import InputError, InventoryError
from agent.inventory import Endpoint, Secret, load_inventory
from agent.inventory.summary import host_summary

DATA = Path(__file__).parents[1] / "data" / "inventories"
BAD = DATA / "bad"
EXAMPLE = Path(__file__).parents[2] / "inventory.example.yaml"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home without ~/.ssh/config: the developer's own ssh config must not change the results."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(directory: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def expected_message(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return first_line.removeprefix("# expect: ").replace("{dir}", str(path.parent))


# --- bad inventories: tests/data/inventories/bad/<case>.yaml, first line holds the expected message


@pytest.mark.parametrize("case", sorted(BAD.glob("*.yaml")), ids=lambda path: path.stem)
def test_bad_inventory_is_rejected_with_one_exact_line(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case.parent)
    with pytest.raises(InventoryError) as raised:
        load_inventory(Path(case.name))
    assert str(raised.value) == expected_message(case)
    assert "\n" not in str(raised.value)


def test_there_are_many_distinct_bad_inventories() -> None:
    assert len({expected_message(case) for case in BAD.glob("*.yaml")}) >= 12


def test_missing_inventory_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nowhere\.yaml: no such inventory file"):
        load_inventory(tmp_path / "nowhere.yaml")


def test_error_about_activation_key_never_shows_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          web1:
            vars:
              activation_kye: K-SECRET-123
        """)  # fmt: skip
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert "did you mean 'activation_key'?" in str(raised.value)
    assert "K-SECRET-123" not in str(raised.value)


# --- vars and groups


def test_vars_apply_defaults_then_parent_groups_then_child_groups_then_host(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        defaults:
          vars: {edition: lite, period: monthly, release: stable, tier: defaults, site: defaults}
        groups:
          eu-web:                      # the child: applies after its parent, whatever the names
            vars: {tier: eu-web, release: beta}
            hosts: [web1]
          eu:
            vars: {tier: eu, period: annual, site: eu}
            children: [eu-web]
          b-site:                      # two top-level groups apply by name: a-site, then b-site
            vars: {site: b-site}
            hosts: [web1]
          a-site:
            vars: {site: a-site}
            hosts: [web1]
        hosts:
          web1:
            vars: {edition: business, fqdn: web1.example.com}
          web2: {groups: [eu]}
        """)  # fmt: skip
    inventory = load_inventory(path)
    web1, web2 = inventory.hosts
    assert web1.groups == ("a-site", "b-site", "eu", "eu-web")
    assert dict(web1.vars) == {
        "edition": "business",
        "period": "annual",
        "release": "beta",
        "tier": "eu-web",
        "site": "eu",
        "fqdn": "web1.example.com",
    }
    assert web2.groups == ("eu",)
    assert web2.vars["tier"] == "eu" and web2.vars["release"] == "stable"
    assert inventory.groups == {"a-site": ("web1",), "b-site": ("web1",), "eu": ("web1", "web2"), "eu-web": ("web1",)}


def test_free_form_vars_keep_their_yaml_types(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          web1:
            vars: {php_versions: ["8.2", "8.3"], mysql: {port: 3306}, backups: true}
        """)  # fmt: skip
    assert dict(load_inventory(path).hosts[0].vars) == {
        "php_versions": ["8.2", "8.3"],
        "mysql": {"port": 3306},
        "backups": True,
    }


def test_yaml_anchors_and_merge_keys_are_followed(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          web1: &common
            port: 2222
            user: deploy
          web2:
            <<: *common
            port: 2223
        """)  # fmt: skip
    web1, web2 = load_inventory(path).hosts
    assert web2.endpoint == Endpoint(address="web2", port=2223, user="deploy")


def test_activation_key_is_a_secret_masked_in_repr_and_public_vars(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          web1:
            vars: {activation_key: K-SECRET-123}
        """)  # fmt: skip
    host = load_inventory(path).hosts[0]
    assert isinstance(host.vars["activation_key"], Secret)
    assert host.vars["activation_key"] == "K-SECRET-123"
    assert "K-SECRET-123" not in repr(host)
    assert host.public_vars() == {"activation_key": "***"}


# --- connection settings


def test_sudo_defaults_to_true_only_for_users_other_than_root(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          as-root: {}
          as-deploy: {user: deploy}
          root-with-sudo: {sudo: true}
        """)  # fmt: skip
    assert [host.sudo for host in load_inventory(path).hosts] == [False, True, True]


def test_sudo_from_defaults_beats_the_user_based_default(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        defaults: {user: deploy, sudo: false}
        hosts:
          web1: {}
        """)  # fmt: skip
    assert load_inventory(path).hosts[0].sudo is False


def test_identity_files_and_known_hosts_are_relative_to_the_inventory_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "deploy").write_text("key")
    path = write(tmp_path, """\
        ssh: {known_hosts: lab_known_hosts}
        defaults: {identity_file: keys/deploy}
        hosts:
          web1: {}
        """)  # fmt: skip
    monkeypatch.chdir("/")
    inventory = load_inventory(path)
    assert inventory.hosts[0].endpoint.identity_file == tmp_path / "keys" / "deploy"
    assert inventory.ssh.known_hosts == tmp_path / "lab_known_hosts"


def test_ssh_settings_have_safe_defaults(tmp_path: Path, isolated_home: Path) -> None:
    ssh = load_inventory(write(tmp_path, "hosts: {web1: {}}\n")).ssh
    assert (ssh.known_hosts, ssh.host_key_policy, ssh.connect_timeout, ssh.command_timeout) == (
        isolated_home / ".ssh" / "known_hosts",
        "strict",
        10.0,
        600.0,
    )


def test_gateway_string_takes_user_and_identity_from_the_host_when_unset(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("key")
    path = write(tmp_path, """\
        defaults:
          gateway: bastion.example.com
        hosts:
          web1: {user: deploy, identity_file: key}
          web2: {gateway: "jump@[2001:db8::1]:2222"}
          bastion.example.com: {gateway: none}
        """)  # fmt: skip
    web1, web2, bastion = load_inventory(path).hosts
    assert web1.gateway == Endpoint("bastion.example.com", 22, "deploy", tmp_path / "key")
    assert web2.gateway == Endpoint("2001:db8::1", 2222, "jump", None)
    assert bastion.gateway is None


def test_gateway_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          web1:
            gateway: {address: 198.18.0.1, port: 2200, user: jump}
        """)  # fmt: skip
    assert load_inventory(path).hosts[0].gateway == Endpoint("198.18.0.1", 2200, "jump", None)


def test_same_private_address_behind_different_gateways_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        hosts:
          dc1-web: {address: 10.0.0.5, gateway: bastion1.example.com}
          dc2-web: {address: 10.0.0.5, gateway: bastion2.example.com}
        """)  # fmt: skip
    assert len(load_inventory(path).hosts) == 2


def test_ssh_config_beats_defaults_and_loses_to_the_host_entry(tmp_path: Path) -> None:
    (tmp_path / "config_key").write_text("key")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(textwrap.dedent(f"""\
        Host web1 web2
          HostName 203.0.113.7
          User from-config
          Port 2200
          IdentityFile {tmp_path}/missing_key
          IdentityFile {tmp_path}/config_key
          ProxyJump jump@bastion.example.com:2222
        Host web2
          HostName 203.0.113.8
        Host *
          User everyone
        """))  # fmt: skip
    path = write(tmp_path, """\
        defaults: {user: from-defaults, port: 2022}
        hosts:
          web1: {}
          web2: {port: 22, user: explicit, gateway: none}
          web3: {}
        """)  # fmt: skip
    web1, web2, web3 = load_inventory(path, ssh_config=ssh_config).hosts
    # ssh semantics: the first matching value wins, and a missing IdentityFile is skipped.
    config_keys = (tmp_path / "config_key",)
    assert web1.endpoint == Endpoint("203.0.113.7", 2200, "from-config", ssh_config_keys=config_keys)
    assert web1.gateway == Endpoint("bastion.example.com", 2222, "jump", ssh_config_keys=config_keys)
    assert web2.endpoint == Endpoint("203.0.113.7", 22, "explicit", ssh_config_keys=config_keys)
    assert web2.gateway is None
    assert web3.endpoint == Endpoint("web3", 2022, "everyone", None)


def test_every_existing_identity_file_of_ssh_config_is_kept_in_order_with_identities_only(tmp_path: Path) -> None:
    """ssh tries each IdentityFile in turn (and ssh-agent's keys unless IdentitiesOnly); only the first
    was kept before, so a host whose authorized key was named second was refused where ssh got in."""
    for name in ("work", "personal"):
        (tmp_path / name).write_text("key")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(textwrap.dedent(f"""\
        Host pinned
          IdentitiesOnly yes
        Host *
          IdentityFile {tmp_path}/work
          IdentityFile {tmp_path}/gone
          IdentityFile {tmp_path}/personal
          IdentityFile {tmp_path}/work
        """))  # fmt: skip
    path = write(tmp_path, """\
        hosts:
          open: {address: 192.0.2.1}
          pinned: {address: pinned}
          own: {address: 192.0.2.3, identity_file: personal}
        """)  # fmt: skip
    open_, pinned, own = load_inventory(path, ssh_config=ssh_config).hosts
    both = (tmp_path / "work", tmp_path / "personal")
    assert (open_.endpoint.identity_file, open_.endpoint.ssh_config_keys, open_.endpoint.identities_only) == (
        None,
        both,
        False,
    )
    assert (pinned.endpoint.ssh_config_keys, pinned.endpoint.identities_only) == (both, True)
    shown = host_summary(pinned)  # `inventory show --json`
    assert (shown["identity_file"], shown["ssh_config_keys"], shown["identities_only"]) == (
        None,
        [str(k) for k in both],
        True,
    )
    # The inventory's identity_file is offered alone, whatever ssh config names.
    assert (own.endpoint.identity_file, own.endpoint.ssh_config_keys) == (tmp_path / "personal", ())


@pytest.mark.parametrize(
    ("written", "read"), [("yes", True), ("True", True), ('"yes"', True), ("no", False), ("FALSE", False)]
)
def test_identities_only_takes_the_words_ssh_takes(tmp_path: Path, written: str, read: bool) -> None:
    """`IdentitiesOnly true` is yes to ssh; it was read as no, and ssh-agent's keys were offered."""
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host web1\n  IdentitiesOnly {written}\n")
    path = write(tmp_path, "hosts: {web1: {}}\n")
    assert load_inventory(path, ssh_config=ssh_config).hosts[0].endpoint.identities_only is read


def test_identities_only_of_another_word_is_refused_as_ssh_refuses_it(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host web1\n  IdentitiesOnly maybe\x1b[2J\n")
    path = write(tmp_path, "hosts: {web1: {}}\n")
    with pytest.raises(InputError) as refused:
        load_inventory(path, ssh_config=ssh_config)
    assert str(refused.value) == (
        f"{ssh_config}: IdentitiesOnly 'maybe\\x1b[2J': ssh takes yes or no there (and refuses the file)"
    )


def test_ssh_config_is_looked_up_by_address_when_the_host_has_one(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host 198.18.0.2\n  User by-address\nHost web1\n  User by-name\n")
    path = write(tmp_path, "hosts: {web1: {address: 198.18.0.2}}\n")
    assert load_inventory(path, ssh_config=ssh_config).hosts[0].endpoint.user == "by-address"


def test_home_ssh_config_is_used_when_none_is_given(tmp_path: Path, isolated_home: Path) -> None:
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "config").write_text("Host web1\n  Port 2201\n")
    path = write(tmp_path, "hosts: {web1: {}}\n")
    assert load_inventory(path).hosts[0].endpoint.port == 2201


# --- select


@pytest.fixture
def fleet(tmp_path: Path):
    return load_inventory(write(tmp_path, """\
        groups:
          eu: {children: [eu-db], hosts: [web2]}
          eu-db: {hosts: [db1]}
        hosts:
          web1: {}
          web2: {}
          db1: {}
          db2: {}
        """))  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "names"),
    [
        (None, ["web1", "web2", "db1", "db2"]),
        ("db2", ["db2"]),
        ("eu", ["web2", "db1"]),
        ("web*", ["web1", "web2"]),
        ("db2, eu-db ,web1", ["web1", "db1", "db2"]),  # inventory order, not pattern order
        ("eu,web?", ["web1", "web2", "db1"]),  # overlaps counted once
    ],
)
def test_select_by_name_group_and_glob(fleet, limit: str | None, names: list[str]) -> None:
    assert [host.name for host in fleet.select(limit)] == names


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        ("", "limit '' names no host or group"),  # --limit "$UNSET" in a cron line
        (" ", "limit ' ' names no host or group"),
        (",", "limit ',' names no host or group"),
        ("web1,,db2", "limit 'web1,,db2' has an empty pattern between commas"),
        ("web1,", "limit 'web1,' has an empty pattern between commas"),
    ],
)
def test_select_refuses_a_limit_that_could_widen_to_every_host(fleet, limit: str, problem: str) -> None:
    with pytest.raises(InputError) as raised:
        fleet.select(limit)
    assert (
        str(raised.value)
        == f"{problem}; give host names, group names or globs, or leave the limit out to select every host"
    )


def test_select_refuses_a_pattern_that_matches_nothing(fleet) -> None:
    with pytest.raises(InputError) as raised:
        fleet.select("web1,wbe2")
    assert str(raised.value) == (f"limit pattern 'wbe2' matches no host or group in {fleet.path}; did you mean 'web2'?")


# --- the shipped example


def test_example_inventory_loads() -> None:
    inventory = load_inventory(EXAMPLE, ssh_config=Path("/dev/null"))
    assert len(inventory.hosts) >= 3
    assert all(host.vars.get("edition") for host in inventory.hosts)


# --- properties: mutated addresses and limits from the shipped example -------------------------------

import ipaddress as _ipaddress  # noqa: E402
import socket as _socket  # noqa: E402

from hypothesis import given as _given  # noqa: E402
from hypothesis import settings as _settings  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402

from agent.inventory.addresses import is_address, is_dns_name, parse_gateway  # noqa: E402

EXAMPLE_ADDRESSES = ["198.18.0.2", "2001:db8::20", "web3.example.com", "10.0.0.5", "bastion.example.com"]
ADDRESS_TOKENS = [
    "\n",
    "\r",
    "\t",
    " ",
    ".",
    "..",
    "0",
    "00",
    "1",
    "9",
    "x",
    "0x",
    "f",
    ":",
    "::",
    "[",
    "]",
    "%",
    "-",
    "_",
    "@",
    "٣",
    "\u200b",
    "\x1b",
    "\x00",
    "256",
    "4294967296",
]


@_st.composite
def _mutated_text(draw, originals: list[str], tokens: list[str]) -> str:
    text = draw(_st.sampled_from(originals))
    for _ in range(draw(_st.integers(1, 3))):
        at = draw(_st.integers(0, len(text)))
        if draw(_st.booleans()):
            text = text[:at] + draw(_st.one_of(_st.sampled_from(tokens), _st.characters())) + text[at:]
        else:
            text = text[:at] + text[at + draw(_st.integers(1, 4)) :]
    return text


@_settings(max_examples=1000, deadline=None)
@_given(text=_mutated_text(EXAMPLE_ADDRESSES, ADDRESS_TOKENS))
def test_an_accepted_address_is_an_ip_or_a_name_no_resolver_reads_as_a_number(text):
    if not is_address(text):
        return
    try:
        _ipaddress.ip_address(text)
        return
    except ValueError:
        pass
    assert is_dns_name(text) and text.isascii() and text.isprintable() and " " not in text
    with pytest.raises(OSError):  # inet_aton reads 127.1, 2130706433 and 0x7f.1 as IPv4 addresses
        _socket.inet_aton(text)


@_settings(max_examples=500, deadline=None)
@_given(
    text=_mutated_text(["jump@bastion.example.com:2222", "bastion.example.com", "[2001:db8::1]:22"], ADDRESS_TOKENS)
)
def test_a_parsed_gateway_has_a_checked_address_and_a_port_in_range(text):
    spec = parse_gateway(text)
    if spec is not None:
        assert is_address(spec.address) and (spec.port is None or 1 <= spec.port <= 65535)
        assert "\n" not in text and (spec.user is None or spec.user.isprintable())


LIMIT_NAMES = ["web1", "web2", "web3.example.com", "db1", "eu", "eu-hosting", "staging", "web*", "db?", "*"]


@_settings(max_examples=500, deadline=None)
@_given(
    limit=_mutated_text([",".join(LIMIT_NAMES[:3]), "eu,db1", "web*", "staging"], [",", " ", "", "*", "?", "[", "\n"])
)
def test_a_limit_selects_exactly_what_its_patterns_match_or_is_one_line_error(limit):
    example = load_inventory(EXAMPLE, ssh_config=Path("/dev/null"))
    try:
        chosen = example.select(limit)
    except InputError as error:
        assert len(str(error).splitlines()) == 1
        return
    patterns = [pattern.strip() for pattern in limit.split(",")]
    assert chosen and all(patterns)  # an empty pattern never passes, so nothing widens to every host
    assert {h.name for h in chosen} == set().union(*(example._match(pattern) for pattern in patterns))


@pytest.mark.parametrize(
    "text",
    [
        "198.18.0.2",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3.4\n",
        " 1.2.3.4",
        "1.2.3.4.",
        "::ffff:1.2.3.4",
        "2001:db8::1",
        "١.٢.٣.٤",
        "1.2.3.-4",
        "web1",
    ],
)
def test_ipv4_fast_path_agrees_with_ipaddress(text: str) -> None:
    import ipaddress

    from agent.inventory.addresses import canonical_address, is_ip_address

    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        parsed = None
    assert is_ip_address(text) == (parsed is not None)
    expected = str(getattr(parsed, "ipv4_mapped", None) or parsed) if parsed else text.lower().rstrip(".")
    assert canonical_address(text) == expected
