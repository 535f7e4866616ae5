"""`Include` in an ssh config: the files it names read where it stands, scoped as OpenSSH scopes them.

OpenSSH's own `ssh -G` (the settings ssh would use for a host) is the oracle where it is installed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import cli
from agent.errors import InputError
from agent.inventory.sshconfig import SshConfig

NAMES = ("web1", "web2", "db1")
SSH = shutil.which("ssh")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ours(config: Path, name: str) -> tuple[str, str, str]:
    found = SshConfig(config).lookup(name)
    return (found.user or getpass.getuser(), found.port or "22", found.hostname or name)


def ssh_says(config: Path, name: str, home: Path) -> tuple[str, str, str]:
    done = subprocess.run(
        [SSH, "-G", "-F", str(config), name],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
        timeout=30,
        check=True,
    )
    said = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return (said["user"], said["port"], said["hostname"])


def test_a_top_level_include_reads_its_glob_in_lexical_order_and_the_top_scope_comes_back(home: Path) -> None:
    _write(home / ".ssh" / "config.d" / "20-b", "Host web1\n  User b\n  Port 2222\n")
    _write(home / ".ssh" / "config.d" / "10-a", "Host web1\n  User a\n")
    config = _write(home / ".ssh" / "config", "Include config.d/*\nUser fallback\nHost db1\n  Port 2200\n")
    assert ours(config, "web1") == ("a", "2222", "web1")
    assert ours(config, "web2") == ("fallback", "22", "web2")  # the line after the Include is top scope again
    assert ours(config, "db1") == ("fallback", "2200", "db1")
    if SSH:
        assert [ours(config, name) for name in NAMES] == [ssh_says(config, name, home) for name in NAMES]


def test_an_absolute_or_tilde_include_is_read_and_one_that_matches_nothing_is_no_error(home: Path) -> None:
    _write(home / "elsewhere" / "bastions", "Host web*\n  ProxyJump jump.example.com\n")
    config = _write(home / ".ssh" / "config", f"Include ~/elsewhere/bastions {home}/none/*\nHost db1\n  User db\n")
    assert SshConfig(config).lookup("web2").proxy_jump == "jump.example.com"
    assert SshConfig(config).lookup("db1").user == "db"


def test_plain_settings_included_in_a_block_stand_in_that_block(home: Path) -> None:
    _write(home / ".ssh" / "web-settings", "User deployer\nPort 2022\n")
    config = _write(home / ".ssh" / "config", "Host web*\n  Include web-settings\nHost *\n  User other\n")
    assert ours(config, "web1") == ("deployer", "2022", "web1")
    assert ours(config, "db1") == ("other", "22", "db1")
    if SSH:
        assert [ours(config, name) for name in NAMES] == [ssh_says(config, name, home) for name in NAMES]


def test_an_include_in_a_block_that_brings_blocks_of_its_own_is_one_line(home: Path) -> None:
    _write(home / ".ssh" / "more", "Host db1\n  User db\n")
    config = _write(home / ".ssh" / "config", "Host web*\n  User web\n  Include more\n")
    with pytest.raises(InputError) as refused:
        SshConfig(config)
    assert str(refused.value).startswith(f"{config}, line 3: an Include inside a Host or Match block reads Host")


def test_a_file_that_includes_itself_is_one_line(home: Path) -> None:
    config = _write(home / ".ssh" / "config", "Include config\n")
    with pytest.raises(InputError, match="Include nested more than 16 deep"):
        SshConfig(config)


def test_an_included_fifo_is_refused_without_hanging(home: Path) -> None:
    os.mkfifo(home / ".ssh" / "pipe")
    config = _write(home / ".ssh" / "config", "Include pipe\n")
    with pytest.raises(InputError, match="pipe"):
        SshConfig(config)


def test_inventory_check_shows_what_an_included_file_says_for_a_host(home: Path, tmp_path: Path) -> None:
    _write(home / ".ssh" / "config.d" / "fleet", "Host 198.18.0.2\n  User deploy\n  Port 2222\n")
    _write(home / ".ssh" / "config", "Include config.d/*\n")
    inventory = _write(tmp_path / "fleet.yaml", "hosts:\n  web1: {address: 198.18.0.2}\n")
    result = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:4] == ["web1", "198.18.0.2", "2222", "deploy"]


# Configs made of pieces: settings at the top, a glob Include of files with blocks (and settings above
# their first block), settings and blocks after it, and a block that includes plain settings.
_setting = st.sampled_from(["User", "Port", "Hostname"]).flatmap(
    lambda key: st.integers(1, 9).map(
        lambda n: f"{key} " + {"User": f"u{n}", "Port": str(2000 + n), "Hostname": f"h{n}.example.com"}[key]
    )
)
_settings = st.lists(_setting, max_size=3)
_pattern = st.sampled_from(["web1", "web2", "db1", "web*", "*", "db1 web2"])
_block = st.tuples(_pattern, _settings).map(lambda b: [f"Host {b[0]}", *(f"  {line}" for line in b[1])])
_file = st.tuples(_settings, st.lists(_block, max_size=3)).map(
    lambda f: "\n".join([*f[0], *(line for block in f[1] for line in block)]) + "\n"
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    top=_settings,
    included=st.lists(_file, min_size=1, max_size=3),
    after=_settings,
    blocks=st.lists(_block, max_size=2),
    in_block=st.one_of(st.none(), st.tuples(_pattern, _settings)),
)
@pytest.mark.skipif(SSH is None, reason="OpenSSH's client is the oracle")
def test_our_reading_of_includes_agrees_with_ssh(top, included, after, blocks, in_block, tmp_path_factory) -> None:
    home = tmp_path_factory.mktemp("home")
    ssh_dir = home / ".ssh"
    for number, text in enumerate(included):
        _write(ssh_dir / "config.d" / f"{number:02d}.conf", text)
    lines = [*top, "Include config.d/*.conf", *after, *(line for block in blocks for line in block)]
    if in_block is not None:
        _write(ssh_dir / "plain", "\n".join(in_block[1]) + "\n")
        lines += [f"Host {in_block[0]}", "  Include plain"]
    config = _write(ssh_dir / "config", "\n".join(lines) + "\n")
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        assert [ours(config, name) for name in NAMES] == [ssh_says(config, name, home) for name in NAMES]
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keyword=st.sampled_from(["Include", "include", "INCLUDE=", "Include =", "  Include\t"]),
    argument=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
    in_block=st.booleans(),
)
def test_any_include_line_reads_or_is_one_line(keyword, argument, in_block, home: Path) -> None:
    # Whatever follows Include (quotes, globs, ~user, control characters, nothing), the config is read or
    # refused in one line: never a traceback, never a hang.
    _write(home / ".ssh" / "x.conf", "Host web1\n  User x\n")
    line = f"{keyword} {argument}".replace("\n", " ").replace("\r", " ")
    config = _write(home / ".ssh" / "config", ("Host web*\n" if in_block else "") + line + "\n")
    try:
        SshConfig(config).lookup("web1")
    except InputError as error:
        assert "\n" not in str(error).strip()


# ssh refuses ~/.ssh/config, and any file an Include reads, when someone else could have written it (it may
# name a ProxyCommand, run as the user): "Bad owner or permissions". A file given with -F is not checked.
DAMAGES = {
    "writable by others": (None, None, 0o602),
    "owned by nobody": (65534, 65534, 0o644),
    "writable by a group with another member": (0, 65534, 0o620),  # nogroup: nobody's group
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_home_ssh_config_or_an_included_file_others_could_write_is_refused_as_ssh_refuses_it(
    damage: str, home: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")

    def damaged(path: Path) -> Path:
        uid, gid, mode = DAMAGES[damage]
        if uid is not None:
            os.chown(path, uid, gid)
        path.chmod(mode)
        return path

    inventory = _write(tmp_path / "fleet.yaml", "hosts:\n  web1: {address: 198.18.0.2}\n")
    config = damaged(_write(home / ".ssh" / "config", "Host 198.18.0.2\n  ProxyCommand nc %h %p\n"))
    result = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"{config}: bad owner or permissions" in result.output
    given = CliRunner().invoke(cli, ["inventory", "check", "-i", str(inventory), "--ssh-config", str(config)])
    assert given.exit_code == 0, given.output  # as `ssh -F`
    included = damaged(_write(home / ".ssh" / "included", "User x\n"))
    top = _write(tmp_path / "top", f"Include {included}\n")
    with pytest.raises(InputError, match=f"{included}: bad owner or permissions"):
        SshConfig(top)
    if SSH:
        said = subprocess.run([SSH, "-G", "-F", str(top), "web1"], capture_output=True, text=True, timeout=30)
        assert said.returncode == 255 and f"Bad owner or permissions on {included}" in said.stderr


def test_a_file_writable_only_by_its_owners_private_group_is_read_as_debians_ssh_reads_it(tmp_path: Path) -> None:
    # root's group has root alone as member here; Debian's ssh allows group write for such a group.
    import grp
    import pwd

    owner = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(owner.pw_gid)
    if group.gr_mem not in ([], [owner.pw_name]) or any(
        user.pw_gid == owner.pw_gid and user.pw_uid != owner.pw_uid for user in pwd.getpwall()
    ):
        pytest.skip("this user's group is not a private one")
    included = _write(tmp_path / "included", "User private\n")
    included.chmod(0o620)
    top = _write(tmp_path / "top", f"Include {included}\n")
    assert SshConfig(top).lookup("web1").user == "private"
    if SSH:
        assert ssh_says(top, "web1", tmp_path)[0] == "private"
