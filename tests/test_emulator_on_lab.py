"""The install.sh emulator against the facts sheet: --help, each message and exit code, on profiled lab hosts."""

from __future__ import annotations

import urllib.request

import pytest

from labkit import on_host
from test_install_on_lab import install_lab, reset_panel  # noqa: F401 (the module's lab fixture)

pytestmark = pytest.mark.lab

# facts 1.2: every option of the help text (--ispmgr6 is accepted but not listed; --mirror is hidden).
HELP_OPTIONS = ("--osfamily", "--osversion", "--release", "--noinstall", "--install-business", "--ignore-hostname",
                "--silent", "--no-letsencrypt", "--le-domain", "--disable-fail2ban", "--ispmgr5", "--openlitespeed",
                "--litespeed", "--dbtype", "--mysql-server", "--allow-eol-os", "--activation-key")
STABLE = ["--release", "stable"]
# (host, arguments, messages in the output, exit status): facts 1.2-1.9, 2.3, 5 and 7.
CASES = [
    ("h1", [*STABLE, "--dbtype", "postgres", "ispmanager-lite"], ["Incorrect database type"], 1),
    ("h1", [*STABLE, "--dbtype", "mysql", "--mysql-server", "percona", "ispmanager-lite"], ["Incorrect mysql server"], 1),
    ("h1", [*STABLE, "--silent", "--dbtype", "mysql", "--mysql-server", "mariadb", "ispmanager-lite"],
     ["The '--mysql-server' option not supported on this OS"], 1),
    ("h1", [*STABLE, "--silent", "ispmanager-business"], ["ispmanager Business is not supported on Debian-based systems."], 1),
    ("h1", [*STABLE, "--silent", "ispmanager-pro"], ["ispmanager Business is not supported on Debian-based systems."], 1),
    ("h1", [*STABLE, "--silent", "foo"], ["Incorrect package name"], 1),
    ("h1", ["--mirror", "mirror.example.com", "ispmanager-lite"], ["Empty mirror"], 1),
    ("h8", [*STABLE, "--silent", "ispmanager-lite"], ["Unsupported os version (trixie)"], 1),
    ("h7", [*STABLE, "ispmanager-lite"], ["You have to low memory: 488"], 1),
    ("h7", [*STABLE, "--silent", "--dbtype", "mysql", "ispmanager-lite"],
     ["Can't use MySQL to run the panel because too little RAM is available"], 1),
    ("h10", [*STABLE, "ispmanager-lite"], ["You have incorrect hostname: h10"], 1),
    ("h11", [*STABLE, "ispmanager-lite"], ["SELinux is enabled, aborting installation."], 1),
    ("h13", [*STABLE, "--silent", "ispmanager-lite"], [
        "You have already installed package ispmanager-lite-common", "Do not use install.sh script for upgrading!",
        'Use "/usr/local/mgr5/sbin/pkgupgrade.sh coremanager" command instead'], 1),
    ("h12", [*STABLE, "--silent", "ispmanager-lite"],
     ["Some errors with repository", "Problems with repository. Please try again in an hour"], 1),
]


@pytest.fixture(scope="module")
def script(install_lab) -> str:  # noqa: F811
    return urllib.request.urlopen("http://198.18.0.1:8080/install.sh", timeout=10).read().decode()


def run_installer(lab, name: str, args: list[str], script: str):
    """install.sh fed on stdin, as a non-interactive caller runs it (stdin is not a terminal)."""
    return lab.exec(name, ["bash", "-s", "--", *args], input=script)


def test_help_lists_every_option_of_the_facts_sheet_and_exits_0(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    result = run_installer(lab, "h1", ["--help"], script)
    assert result.returncode == 0
    for option in HELP_OPTIONS:
        assert option in result.stdout, option
    assert "--ispmgr6" not in result.stdout and "--mirror" not in result.stdout


@pytest.mark.parametrize("name,args,messages,status", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_each_failure_gives_the_real_message_and_exit_status(install_lab, script, name, args, messages, status):  # noqa: F811
    lab, _ = install_lab
    result = run_installer(lab, name, args, script)
    assert result.returncode == status, result.stdout + result.stderr
    for message in messages:
        assert message in result.stdout, result.stdout


def test_prompts_without_a_terminal_exit_1_without_prompt_text(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    for name, args in (("h9", [*STABLE, "ispmanager-lite"]), ("h1", [*STABLE, "--silent", "ispmanager-foo"]),
                       ("h1", ["--silent", "ispmanager-lite"])):
        result = run_installer(lab, name, args, script)
        assert (result.returncode, result.stdout) == (1, ""), (name, args, result.stdout)


def test_declined_eol_prompt_exits_0_and_installs_nothing(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    lab.exec("h9", ["sh", "-c", "cat > /tmp/install.sh"], input=script)
    result = lab.exec("h9", ["script", "-qec", "bash /tmp/install.sh --release stable ispmanager-lite", "/dev/null"],
                      input="n\n")
    assert result.returncode == 0
    assert "Your operating system is at End of Support (EOL)" in result.stdout
    assert on_host(lab, "h9", "test -e /usr/local/mgr5").returncode == 1


def test_wrong_activation_key_is_tried_3_times_then_invalid_activation_key(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h2")
    result = run_installer(lab, "h2", [*STABLE, "--silent", "--activation-key", "999-wrong", "ispmanager-lite"], script)
    assert result.returncode == 1 and "Invalid activation key" in result.stdout
    assert [request for request in standin.requests if request[1] == "999-wrong"] == [(lab.host("h2").address, "999-wrong")] * 3


def test_no_license_for_the_ip_gives_the_trial_and_commercial_messages(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h3")
    standin.denied_ips.add(lab.host("h3").address)
    try:
        result = run_installer(lab, "h3", [*STABLE, "--silent", "ispmanager-lite"], script)
    finally:
        standin.denied_ips.clear()
    assert result.returncode == 1
    assert "Trial license for this IP has expired" in result.stdout
    assert "You have no commercial license for ispmanager-lite-common or it can't be activated automatically" in result.stdout


def test_activation_key_installs_a_panel_whose_mgrctl_and_licctl_answer(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h4")
    standin.keys["777-goodkey"] = "777"
    result = run_installer(lab, "h4", [*STABLE, "--silent", "--activation-key", "777-goodkey", "ispmanager-lite"], script)
    assert result.returncode == 0, result.stdout
    assert "Your newly installed ispmanager panel is available at:" in result.stdout
    info = on_host(lab, "h4", "/usr/local/mgr5/sbin/mgrctl -m ispmgr license.info").stdout
    assert "licid=777\n" in info and "panel_name=ISPmanager Lite\n" in info
    assert on_host(lab, "h4", "/usr/local/mgr5/sbin/licctl info ispmgr").stdout.startswith("ID: 777\n")
    calls = "mgrctl -m ispmgr user.edit sok=ok name=alice passwd=x confirm=x preset=basic && mgrctl -m ispmgr user"
    assert on_host(lab, "h4", f"PATH=/usr/local/mgr5/sbin:$PATH; {calls}").stdout == "name=alice password_set=yes preset=basic\n"
    assert on_host(lab, "h4", "ss -ltn | grep -q ':1500 '").returncode == 0
