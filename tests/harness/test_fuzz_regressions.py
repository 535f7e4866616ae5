"""The smallest inputs behind the failures harness/fuzz.py found, each through the real command line:
exit 2 with one line, no traceback, nothing written by a refused command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import yamlnodes
from agent.cli.main import cli
from agent.errors import InventoryError


def _cli(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ispagent: error: "), result.stderr
    return lines[0].removeprefix("ispagent: error: ")


# --- inventory from-vagrant -----------------------------------------------------------------------


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "private_key"
    path.write_text("key")
    return path


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            b"Host a\n  Port \xff\n",
            "<stdin>:2: the `vagrant ssh-config` output is not UTF-8 text (byte 0xff); save it as UTF-8",
        ),
        ("Host a\n  Port \uff12\uff12\n", "<stdin>:2: Host 'a': Port '\uff12\uff12' is not a port number (1-65535)"),
        ("Host a\n  Port 99999\n", "<stdin>:2: Host 'a': Port '99999' is not a port number (1-65535)"),
        (
            "Host a b\n",
            "<stdin>:1: Host 'a b': not a host name an inventory takes; use letters, digits, '.', ':', '_' and '-'",
        ),
        (
            "Host *a\n",
            "<stdin>:1: Host '*a': not a host name an inventory takes; use letters, digits, '.', ':', '_' and '-'",
        ),
        ("Host a\n  HostName 127.1\n", "<stdin>:2: Host 'a': HostName '127.1' is not an IP address or DNS name"),
        ("Host a\n  User a b\n", "<stdin>:2: Host 'a': User 'a b' is not a valid user name"),
        (
            "Host a\n  Port 2200\nHost a\n  Port 2201\n",
            "<stdin>:3: Host 'a' appears twice (first on line 1); an inventory names each host once",
        ),
    ],
)
def test_vagrant_output_the_inventory_would_refuse_is_refused_with_its_line_and_nothing_is_written(
    tmp_path: Path, text, problem
) -> None:
    output = tmp_path / "lab.yaml"
    assert _one_line_error(_cli("inventory", "from-vagrant", "-o", str(output), input=text)) == problem
    assert not output.exists()


def test_vagrant_machines_sharing_an_address_and_port_are_refused_as_inventory_check_would(tmp_path, key) -> None:
    text = f"Host a\n  HostName 127.0.0.1\n  IdentityFile {key}\nHost b\n  HostName 127.0.0.1\n  IdentityFile {key}\n"
    output = tmp_path / "lab.yaml"
    problem = _one_line_error(_cli("inventory", "from-vagrant", "-o", str(output), input=text))
    assert problem.startswith("<stdin>: the inventory made from it fails inventory check at line ")
    assert problem.endswith("; nothing was written")
    assert not output.exists()


def test_a_vagrant_key_file_that_does_not_exist_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    output = tmp_path / "lab.yaml"
    text = f"Host a\n  IdentityFile {tmp_path}/gone/private_key\n"
    problem = _one_line_error(_cli("inventory", "from-vagrant", "-o", str(output), input=text))
    assert problem.startswith("<stdin>: the inventory made from it fails inventory check at line ")
    assert f"hosts.a.identity_file: '{tmp_path}/gone/private_key' does not exist" in problem
    assert not output.exists()


def test_vagrant_names_yaml_would_read_as_other_types_come_back_as_the_same_names(tmp_path, key) -> None:
    text = "".join(
        f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {key}\n"
        for port, name in enumerate(["null", "true", "1.5", "007"], start=2200)
    )
    output = tmp_path / "lab.yaml"
    assert _cli("inventory", "from-vagrant", "-o", str(output), input=text).exit_code == 0
    checked = _cli("inventory", "check", "-i", str(output), "--ssh-config", "/dev/null")
    assert checked.exit_code == 0, checked.output
    assert [line.split()[0] for line in checked.stdout.splitlines()[1:5]] == ["null", "true", "1.5", "007"]


# --- YAML files (agent/yamlnodes.py) --------------------------------------------------------------


@pytest.mark.parametrize("broken", ["b: [\n", "b: {c: d\n", "b: 'open\n", "- x\n", "b: c: d\n"])
def test_a_syntax_error_at_the_end_of_a_large_file_is_worded_as_in_a_small_one(broken: str, monkeypatch) -> None:
    # A large file is re-read by the pure-Python parser only up to libyaml's error line (5 MB cost 20 s):
    # the message must stay the one the whole re-read gives.
    monkeypatch.setattr(yamlnodes, "MAX_REREAD_CHARACTERS", 1000)
    filler = "a%d: 1\n"
    lines = 1000 // len(filler % 0) + 10
    large = "".join(filler % n for n in range(lines)) + broken
    small = "".join(filler % n for n in range(3)) + broken
    messages = []
    for text in (large, small):
        with pytest.raises(InventoryError) as raised:
            yamlnodes.parse_yaml(text, "f.yaml", InventoryError)
        messages.append(str(raised.value))
    large_line, large_rest = messages[0].removeprefix("f.yaml:").split(":", 1)
    small_line, small_rest = messages[1].removeprefix("f.yaml:").split(":", 1)
    assert large_rest == small_rest
    assert int(large_line) - lines == int(small_line) - 3


def test_a_key_that_runs_over_many_lines_is_cut_in_the_error(tmp_path: Path) -> None:
    # harness/fuzz.py: `- facts` with the items below it indented under it reads as one step name
    # 1 000 characters long, and the error's key path echoed all of it.
    path = tmp_path / "playbook.yaml"
    path.write_text("steps:\n- facts\n" + "  - report\n" * 100)
    problem = _one_line_error(_cli("run", str(path), "-i", str(tmp_path / "none.yaml"), "--dry-run"))
    assert problem.startswith(f"{path}:2: steps[0].facts - report - report")
    assert ".facts - report - report - report - report - report - report - report - report -…: unknown step" in problem
    assert len(problem) < 400 + len(str(path)), problem


# --- where a command writes -----------------------------------------------------------------------


def test_from_vagrant_into_a_directory_that_cannot_be_made_is_one_line(tmp_path: Path, key: Path) -> None:
    text = f"Host a\n  HostName 127.0.0.1\n  IdentityFile {key}\n"
    result = _cli("inventory", "from-vagrant", "-o", "/proc/ispagent-none/lab.yaml", input=text)
    assert (
        _one_line_error(result) == "/proc/ispagent-none/lab.yaml: cannot write the inventory: No such file or directory"
    )


def test_a_ledger_path_whose_directory_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    csv = tmp_path / "billing.csv"
    csv.write_text("date,license_id,edition,period,kind,price\n")
    result = _cli("ledger", "import", str(csv), "--ledger", "/proc/ispagent-none/ledger.db")
    assert result.exit_code == 1, result.output  # a ledger that cannot be opened, as for a file that is not SQLite
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr == (
        "ispagent: error: ledger /proc/ispagent-none/ledger.db: cannot create its directory: "
        "No such file or directory\n"
    )


def test_an_identity_file_name_too_long_for_the_filesystem_is_one_line(tmp_path: Path) -> None:
    # harness/fuzz.py: IdentityFile of 5 000 characters in vagrant ssh-config output; Path.is_file()
    # raises ENAMETOOLONG instead of answering False.
    path = tmp_path / "inventory.yaml"
    path.write_text(f"hosts:\n  web1:\n    address: 192.0.2.1\n    identity_file: {'x' * 5000}\n")
    problem = _one_line_error(_cli("inventory", "check", "-i", str(path), "--ssh-config", "/dev/null"))
    assert (
        problem
        == f"{path}:4: hosts.web1.identity_file: '{'x' * 79}…' cannot be looked up: File name too long; give the path of the key file"
    )
    text = f"Host a\n  HostName 127.0.0.1\n  IdentityFile /{'x' * 5000}\n"
    problem = _one_line_error(_cli("inventory", "from-vagrant", "-o", str(tmp_path / "lab.yaml"), input=text))
    assert problem.startswith("<stdin>: the inventory made from it fails inventory check at line ")
    assert "cannot be looked up: File name too long" in problem
    assert not (tmp_path / "lab.yaml").exists()


def test_an_ssh_config_identity_file_name_too_long_for_the_filesystem_is_passed_over_as_ssh_does(
    tmp_path: Path,
) -> None:
    # Found 2026-12-07: Path.is_file() raised ENAMETOOLONG out of the ssh config lookup, a traceback
    # quoting the 5 000 characters. ssh skips an IdentityFile it cannot find; so does the inventory.
    (tmp_path / "ssh_config").write_text(f"Host a\n  HostName 127.0.0.1\n  IdentityFile /{'x' * 5000}\n")
    (tmp_path / "inventory.yaml").write_text("hosts: {a: {}}\n")
    result = _cli(
        "inventory", "check", "-i", str(tmp_path / "inventory.yaml"), "--ssh-config", str(tmp_path / "ssh_config")
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:2] == ["a", "127.0.0.1"]


def test_a_playbook_var_whose_name_yaml_reads_as_a_number_is_one_line(tmp_path: Path) -> None:
    # harness/fuzz.py (playbook kind, 3 of 2000): `1: []` under vars: reached check_var as the int 1.
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("vars:\n  1: []\nsteps:\n  - facts\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  web1: {address: 127.0.0.1, port: 1}\n")
    result = _cli(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--dry-run",
        "--ssh-config",
        "/dev/null",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert (
        _one_line_error(result) == f"{playbook}: vars.1: a var name is text, not a number or date; write it in quotes"
    )
    assert not (tmp_path / "state" / "runs").exists()
