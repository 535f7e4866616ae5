"""The install.sh emulator inside real lab hosts, each profile its situation, under sh and bash.

The same recorded behaviour as tests/unit/test_installer_emulator.py (tests/data/installer/
emulator_cases.yaml), but on the lab's Debian 12 hosts with their own hostnames, /proc, users and
network, as served by the lab's mirror (where the python3 fallback fetches, as lab hosts have no
curl or wget); then what only the lab shows: the license service, the emulated panel afterwards,
a real terminal, the usage report's noise without a default route.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from labkit import on_host
from test_install_on_lab import install_lab, reset_panel  # noqa: F401 (the module's lab fixture)

from agent.installer.messages import classify_output

pytestmark = pytest.mark.lab

CASES = {
    case["name"]: case
    for case in yaml.safe_load((Path(__file__).parents[1] / "data/installer/emulator_cases.yaml").read_text())
}
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
STABLE = ["--release", "stable"]
# (host, case of emulator_cases.yaml, user, arguments if not the case's, lines if not the case's)
LAB_CASES = [
    ("h16", "distribution-repository-down", "root", None, None),
    ("h17", "non-root-user", "deploy", None, None),
    ("h17", "non-root-user-with-osversion-and-a-machine-id", "deploy", None, None),  # lab hosts have one
    ("h8", "unsupported-os", "root", None, None),
    ("h9", "eol-question-without-answer", "root", None, None),
    ("h9", "eol-question-answered-no", "root", None, None),
    ("h7", "low-ram", "root", None, None),
    ("h18", "ram-at-the-limit", "root", None, None),
    ("h7", "low-ram-silent", "root", None, None),
    ("h19", "mysql-on-a-mini-server", "root", None, None),
    ("h19", "openlitespeed-on-a-mini-server", "root", None, None),
    ("h10", "bad-hostname-without-answer", "root", None, ["You have incorrect hostname: h10"]),
    (
        "h1",
        "banner-and-good-hostname",
        "root",
        None,
        ["Installing on DEBIAN bookworm", "Your hostname: h1.lab.example"],
    ),
    ("h1", "release-menu-without-answer", "root", None, None),
    ("h1", "dashed-unknown-package-name", "root", None, None),
    ("h1", "package-name-without-dash", "root", None, ["Incorrect package name"]),
    ("h1", "business-on-debian", "root", None, None),
    ("h1", "incorrect-database-type", "root", None, None),
    ("h1", "mysql-server-on-debian", "root", None, None),
    ("h1", "empty-mirror", "root", None, None),
    ("h1", "unknown-release", "root", None, None),
    ("h11", "selinux-enabled", "root", None, None),
    ("h13", "panel-already-installed", "root", None, None),
    ("h13", "coremanager-over-a-panel", "root", None, None),
    ("h15", "vendor-repository-unreachable", "root", None, None),
    ("h12", "vendor-repository-answering-5xx", "root", None, None),
]


@pytest.fixture(scope="module")
def script(install_lab) -> str:  # noqa: F811
    lab, _ = install_lab
    return urllib.request.urlopen(f"http://{lab.bridge_address}:8080/install.sh", timeout=10).read().decode()


def run_on_host(lab, name: str, shell: str, args: list[str], script: str, user: str = "root", stdin: str = ""):
    """install.sh saved on the host and run from its directory as `sh install.sh ...`, stdin piped (no terminal)."""
    # A repository file left by an earlier case would be reused instead of asking for the release.
    lab.exec(
        name,
        [
            "sh",
            "-c",
            "mkdir -p /tmp/emulator && cat > /tmp/emulator/install.sh && chmod 755 /tmp/emulator "
            "/tmp/emulator/install.sh && rm -f /tmp/emulator/stages && touch /tmp/emulator/stages "
            "&& chmod 666 /tmp/emulator/stages && rm -f /etc/apt/sources.list.d/exosoft.list "
            "/etc/apt/sources.list.d/ispsystem-base.list",
        ],
        input=script,
    )
    command = ["env", "ISPMGR_EMULATOR_TRACE=/tmp/emulator/stages", shell, "install.sh", *args]
    if user != "root":
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command]
    result = lab.exec(name, ["sh", "-c", 'cd /tmp/emulator && exec "$@"', "run", *command], input=stdin)
    stages = on_host(lab, name, "cat /tmp/emulator/stages").stdout.split()
    return result, stages


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("name, case_name, user, args, lines", LAB_CASES, ids=[f"{c[0]}-{c[1]}" for c in LAB_CASES])
def test_each_profiled_host_gives_the_real_installers_behaviour(
    install_lab,
    script,
    shell,
    name,
    case_name,
    user,  # noqa: F811
    args,
    lines,
):
    lab, _ = install_lab
    case = CASES[case_name]
    result, stages = run_on_host(lab, name, shell, args or case.get("args", []), script, user, case.get("stdin") or "")
    output = COLOUR.sub("", result.stdout + result.stderr)
    where = f"[{name} {shell}] exit {result.returncode}\n{result.stdout}--- stderr\n{result.stderr}"
    expected_exit = case["exit"][shell] if isinstance(case["exit"], dict) else case["exit"]
    assert result.returncode == expected_exit, where
    assert (stages[-1] if stages else None) == case["stage"], f"stages {stages}\n{where}"
    wanted = lines if lines is not None else case.get("lines", [])
    wanted = wanted[shell] if isinstance(wanted, dict) else wanted
    for line in wanted:
        pattern = re.compile(re.escape(line).replace(re.escape("{n}"), r"\d+").replace(re.escape("{root}"), ""))
        assert any(pattern.fullmatch(text) for text in output.splitlines()), f"missing {line!r}\n{where}"
    for text in case.get("absent", []):
        assert text not in output, where
    if "class" in case:
        assert classify_output(result.stdout + result.stderr, result.returncode).name == case["class"], where
    assert "ERROR:" not in output and "Your choice is:" not in output, where


def test_without_a_default_route_the_usage_report_prints_the_real_noise(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    result, _ = run_on_host(lab, "h1", "sh", [*STABLE, "--silent", "--noinstall", "ispmanager-lite"], script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cat: /sys/class/net//address: No such file or directory" in result.stderr


def test_declined_eol_prompt_on_a_terminal_exits_0_and_installs_nothing(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    lab.exec("h9", ["sh", "-c", "cat > /tmp/install.sh"], input=script)
    result = lab.exec(
        "h9", ["script", "-qec", "sh /tmp/install.sh --release stable ispmanager-lite", "/dev/null"], input="n\n"
    )
    assert result.returncode == 0
    assert "Your operating system is at End of Support (EOL)" in result.stdout and "Your choice is:" in result.stdout
    assert on_host(lab, "h9", "test -e /usr/local/mgr5").returncode == 1


def test_a_hostname_piped_at_the_prompt_is_applied_cut_at_its_last_label(install_lab, script):  # noqa: F811
    lab, _ = install_lab
    hosts_before = on_host(lab, "h10", "cat /etc/hosts; hostname").stdout
    try:
        result, stages = run_on_host(
            lab, "h10", "sh", [*STABLE, "--noinstall", "ispmanager-lite"], script, stdin="h10.lab.example\n"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Your hostname: h10.lab.example" in COLOUR.sub("", result.stdout)
        assert on_host(lab, "h10", "cat /etc/hostname").stdout == "h10.lab\n"
    finally:
        hosts, _, short = hosts_before.rstrip("\n").rpartition("\n")
        on_host(lab, "h10", f"printf '%s\\n' '{hosts}' > /etc/hosts; echo {short} > /etc/hostname; hostname {short}")


def test_wrong_activation_key_is_tried_3_times_then_invalid_activation_key(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h2")
    result, stages = run_on_host(
        lab, "h2", "sh", [*STABLE, "--silent", "--activation-key", "999-wrong", "ispmanager-lite"], script
    )
    assert result.returncode == 1 and "Invalid activation key" in COLOUR.sub("", result.stdout)
    assert stages[-1] == "license"
    assert [request for request in standin.requests if request[1] == "999-wrong"] == [
        (lab.host("h2").address, "999-wrong")
    ] * 3


def test_no_license_for_the_ip_gives_the_trial_and_commercial_messages(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h3")
    standin.denied_ips.add(lab.host("h3").address)
    try:
        result, _ = run_on_host(lab, "h3", "bash", [*STABLE, "--silent", "ispmanager-lite"], script)
    finally:
        standin.denied_ips.clear()
    output = COLOUR.sub("", result.stdout)
    assert result.returncode == 1
    assert "Trial license for this IP has expired" in output
    assert "You have no commercial license for ispmanager-lite-common or it can't be activated automatically" in output


def test_activation_key_installs_a_panel_whose_mgrctl_and_licctl_answer(install_lab, script):  # noqa: F811
    lab, standin = install_lab
    reset_panel(lab, "h4")
    standin.keys["777-goodkey"] = "777"
    result, stages = run_on_host(
        lab, "h4", "sh", [*STABLE, "--silent", "--activation-key", "777-goodkey", "ispmanager-lite"], script
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert stages[-1] == "done"
    assert "Your newly installed ispmanager panel is available at:" in COLOUR.sub("", result.stdout)
    info = on_host(lab, "h4", "/usr/local/mgr5/sbin/mgrctl -m ispmgr license.info").stdout
    assert "licid=777\n" in info and "panel_name=ISPmanager Lite\n" in info
    assert on_host(lab, "h4", "/usr/local/mgr5/sbin/licctl info ispmgr").stdout.startswith("ID: 777\n")
    calls = "mgrctl -m ispmgr user.edit sok=ok name=alice passwd=x confirm=x preset=basic && mgrctl -m ispmgr user"
    assert (
        on_host(lab, "h4", f"PATH=/usr/local/mgr5/sbin:$PATH; {calls}").stdout
        == "name=alice password_set=yes preset=basic\n"
    )
    assert on_host(lab, "h4", "ss -ltn | grep -q ':1500 '").returncode == 0
    assert (
        on_host(lab, "h4", "cat /etc/apt/sources.list.d/exosoft.list").stdout
        == f"deb http://{lab.bridge_address}:8080/repo/debian 6-stable6-bookworm main\n"
    )
