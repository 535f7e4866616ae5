"""End to end on the lab: 20 hosts, one per failure profile; rerun; audit; a dropped SSH connection and --resume.

Uses tests/data/installer/install-nolicense.yaml (playbooks/install.yaml without the license and
report steps of the licenses issue) and the license stand-in, so these tests need no partner account.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.license_standin import LicenseStandin
from labkit import REPO, events, ispagent, on_host, read_report, wait_until, write_inventory

from agent.installer.messages import REPOSITORY_UNREACHABLE
from agent.lab.mirror import write_config
from agent.lab.profiles import login_user, preinstalled_licid

pytestmark = pytest.mark.lab

INSTALL = REPO / "tests" / "data" / "installer" / "install-nolicense.yaml"
AUDIT = REPO / "playbooks" / "audit.yaml"
LAB_SIZE = 20
PROFILES = {
    "h7": "low-ram",
    "h8": "debian13",
    "h9": "eol-os",
    "h10": "bad-hostname",
    "h11": "selinux",
    "h12": "repo-failure",
    "h13": "installed",
    "h15": "repo-unreachable",
    "h16": "dist-repo-down",
    "h17": "non-root",
    "h18": "ram-512",
    "h19": "ram-1024",
}
# What each bad host's preflight says (the host result's error starts with "preflight: " and this;
# {mirror} is the lab's mirror, on its bridge address).
PREFLIGHT_ERRORS = {
    "h7": "[ram] You have to low memory: 488 MB (the installer needs more than 512 MB)",
    "h8": "[os] Unsupported os version (trixie)",
    "h9": "[eol_os] debian 10 is at End of Support (EOL): upgrade the OS, or set allow_eol_os: true",
    "h10": "[hostname] You have incorrect hostname: h10",
    "h11": "[selinux] SELinux is enabled",
    "h12": "[repository] the installer's repository {mirror}/repo/ is not reachable from the host (HTTP Error 503",
    "h15": "[repository_unreachable] the installer's repository {mirror}/repo/ does not answer the host (",
    "h18": "[ram] You have to low memory: 512 MB (the installer needs more than 512 MB)",
    # install.sh would fail these at its first apt step (exit 100) after the license was paid for
    "h16": "[os_repository] install.sh must first install lsb-release, wget, gpg from the distribution's repository,"
    " which does not answer ({mirror}/debian: ",
    "h17": "[root] commands run as uid 1000: install.sh must run as root",
}
BAD = PREFLIGHT_ERRORS
RESET_PANEL = (
    "pid=$(cat /var/lib/ispagent/installer/install.pid 2>/dev/null) && kill -9 -$pid 2>/dev/null; "
    "pid=$(cat /usr/local/mgr5/var/run/ihttpd.pid 2>/dev/null) && kill -9 $pid 2>/dev/null; "
    "rm -rf /usr/local/mgr5 /var/lib/ispagent /var/lib/ispmanager-emulator /etc/apt/sources.list.d/exosoft.list; true"
)


def reset_panel(lab, name: str) -> None:
    """Remove what an install left on a host (emulated panel, our install dir, its processes)."""
    on_host(lab, name, RESET_PANEL)


@pytest.fixture(scope="module")
def install_lab(lab):
    """The session lab grown to 20 hosts with one host per profile, and the license stand-in."""
    standin = LicenseStandin(address=lab.bridge_address).start()
    mirror_dir = lab.dir / "services" / "mirror"
    try:
        # Each module gets its profiled hosts re-created from scratch: nothing an earlier module (or an
        # earlier session) did to h7..h20 carries over, whatever order the modules run in.
        lab.up(6)
        lab.up(LAB_SIZE, profiles=PROFILES)
        release = on_host(lab, "h8", "grep ^VERSION_CODENAME= /etc/os-release").stdout.strip()
        assert release == "VERSION_CODENAME=trixie", f"h8's debian13 profile did not take: {release!r}"
        for host in lab.hosts:
            if host.profile is None:
                reset_panel(lab, host.name)
        write_config(mirror_dir, license_url=standin.url, install_seconds=1, license_retry_delay=0.2)
        yield lab, standin
    finally:
        standin.stop()
        (mirror_dir / "config.json").unlink(missing_ok=True)
        for host in lab.hosts[:6]:
            reset_panel(lab, host.name)
        lab.up(6)


def inventory(lab, path: Path, **extra_vars) -> Path:
    hosts = {
        h.name: {
            "address": h.address,
            "vars": {"fqdn": h.fqdn, "installer_url": f"http://{lab.bridge_address}:8080/install.sh", **extra_vars},
        }
        for h in lab.hosts
    }
    for host in lab.hosts:
        if login_user(host.profile) != "root":
            hosts[host.name].update(user=login_user(host.profile), sudo=False)
    return write_inventory(lab, path, hosts=hosts)


def hosts_of(report: dict) -> dict[str, dict]:
    return {host["name"]: host for host in report["hosts"]}


def test_twenty_hosts_good_ones_installed_and_verified_bad_ones_fail_with_the_real_message_rerun_changes_nothing(
    install_lab, tmp_path
):
    lab, standin = install_lab
    path = inventory(lab, tmp_path / "inventory.yaml")
    first = ispagent(
        "run", str(INSTALL), "-i", str(path), "--report-json", str(tmp_path / "1.json"), state_dir=tmp_path
    )
    assert first.returncode == 1, first.stdout + first.stderr
    hosts = hosts_of(read_report(tmp_path / "1.json"))
    good = [h.name for h in lab.hosts if h.name not in BAD]
    assert len(good) == 10
    for name, message in PREFLIGHT_ERRORS.items():
        assert hosts[name]["status"] == "failed", name
        message = message.format(mirror=f"http://{lab.bridge_address}:8080")
        assert hosts[name]["error"].startswith(f"preflight: {message}"), hosts[name]["error"]
        assert [step["step"] for step in hosts[name]["steps"]] == ["facts", "preflight"]
        assert on_host(lab, name, "test -e /var/lib/ispagent/installer/install.sh").returncode == 1  # nothing run
    # The vendor's repository never answering h15 is the installer's repository_unreachable, with its advice
    # (not internal_repository, not the 503 of h12's retry-later "repository")
    assert [p["rule"] for p in hosts["h15"]["preflight"]["problems"]] == ["repository_unreachable"]
    assert hosts["h15"]["error"].endswith(REPOSITORY_UNREACHABLE.advice), hosts["h15"]["error"]
    assert [p["rule"] for p in hosts["h12"]["preflight"]["problems"]] == ["repository"]
    bad_addresses = {lab.host(name).address for name in PREFLIGHT_ERRORS}
    assert not bad_addresses & {ip for ip, _ in standin.requests}, (
        "a license was asked for a host that failed preflight"
    )
    for name in good:
        host = hosts[name]
        assert host["status"] == "changed", (name, host["error"])
        assert all(check["ok"] for check in host["verify"].values()), (name, host["verify"])
        assert on_host(lab, name, "ss -ltn | grep -q ':1500 '").returncode == 0, name
    fresh = hosts["h14"]
    assert fresh["installer"]["result"] == "installed"
    assert fresh["installer"]["command"] == "bash install.sh --release stable --dbtype sqlite --silent ispmanager-lite"
    assert fresh["verify"]["license"]["detail"].startswith(f"licid {LicenseStandin.licid_for(lab.host('h14').address)}")
    mini = on_host(lab, "h19", "cat /var/lib/ispagent/installer/install.log").stdout
    assert "Installing recommended software (nginx, mini)" in mini  # 1024 MB: the mini install
    preinstalled = hosts["h13"]
    assert preinstalled["preflight"]["installed"] is True and preinstalled["preflight"]["licid"] == preinstalled_licid(
        13
    )
    assert [s["status"] for s in preinstalled["steps"]] == ["ok", "ok", "skipped", "changed", "ok"]
    assert on_host(lab, "h13", "cat /var/lib/ispmanager-emulator/invocations").returncode == 1  # install.sh never ran

    second = ispagent(
        "run", str(INSTALL), "-i", str(path), "--report-json", str(tmp_path / "2.json"), state_dir=tmp_path
    )
    report = read_report(tmp_path / "2.json")
    assert report["summary"]["changed"] == 0 and report["summary"]["ok"] == len(good), second.stdout
    assert all(not step["changed"] for host in report["hosts"] for step in host["steps"])

    audit = ispagent(
        "run",
        str(AUDIT),
        "-i",
        str(path),
        "--limit",
        ",".join(good),
        "--report-json",
        str(tmp_path / "audit.json"),
        state_dir=tmp_path,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = read_report(tmp_path / "audit.json")
    assert report["summary"]["ok"] == len(good) and report["summary"]["changed"] == 0
    assert all(check["ok"] for host in report["hosts"] for check in host["verify"].values())


def test_full_install_playbook_licenses_exactly_the_good_fresh_hosts_through_the_lab_partner_account(
    install_lab, tmp_path
):
    """playbooks/install.yaml as shipped: the license step orders from the lab's partner-account
    emulator (which also answers the installer's licctl fetch) for the fresh good hosts only."""
    from agent.lab.services import inventory_vars
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    lab, standin = install_lab
    mirror_dir = lab.dir / "services" / "mirror"
    good = [h.name for h in lab.hosts if h.name not in BAD]
    for name in good:
        if name != "h13":  # h13 keeps its preinstalled panel and its own (foreign) license
            reset_panel(lab, name)
    service_vars = inventory_vars(lab.dir, lab.bridge_address)
    write_config(
        mirror_dir, license_url=f"http://{lab.bridge_address}:8443", install_seconds=1, license_retry_delay=0.2
    )
    try:
        path = inventory(lab, tmp_path / "inventory.yaml", **service_vars)
        first = ispagent(
            "run",
            str(REPO / "playbooks" / "install.yaml"),
            "-i",
            str(path),
            "--report-json",
            str(tmp_path / "1.json"),
            state_dir=tmp_path,
        )
        assert first.returncode == 1, first.stdout + first.stderr  # the bad hosts fail
        hosts = hosts_of(read_report(tmp_path / "1.json"))
        for name in PREFLIGHT_ERRORS:
            assert hosts[name]["status"] == "failed" and "license" not in hosts[name], name
        for name in good:
            wanted = ("ok", "changed") if name == "h13" else ("changed",)  # h13 was configured by an earlier test
            assert hosts[name]["status"] in wanted, (name, hosts[name]["error"])
            assert all(check["ok"] for check in hosts[name]["verify"].values()), (name, hosts[name]["verify"])
        assert hosts["h13"]["license"]["action"] == "none"
        assert hosts["h13"]["license"]["id"] == preinstalled_licid(13)
        account = PartnerClient(settings_from_vars(service_vars)).list()
        live = [lic for lic in account if lic.live]
        by_ip = {lic.ip: [l.id for l in live if l.ip == lic.ip] for lic in live}
        fresh = [name for name in good if name != "h13"]
        for name in fresh:
            assert by_ip.get(lab.host(name).address, []) == [hosts[name]["license"]["id"]], name
            assert hosts[name]["license"]["action"] == "ordered"
        for name in [*PREFLIGHT_ERRORS, "h13"]:
            assert lab.host(name).address not in by_ip, f"{name} got a license"

        second = ispagent(
            "run",
            str(REPO / "playbooks" / "install.yaml"),
            "-i",
            str(path),
            "--report-json",
            str(tmp_path / "2.json"),
            state_dir=tmp_path,
        )
        report = read_report(tmp_path / "2.json")
        assert report["summary"]["changed"] == 0 and report["summary"]["ok"] == len(good), second.stdout
        assert len([lic for lic in PartnerClient(settings_from_vars(service_vars)).list() if lic.live]) == len(live)
    finally:
        write_config(mirror_dir, license_url=standin.url, install_seconds=1, license_retry_delay=0.2)
        for name in good:
            if name != "h13":
                reset_panel(lab, name)


def test_dry_run_shows_the_config_diff_and_changes_nothing(install_lab, tmp_path):
    lab, _ = install_lab
    path = inventory(lab, tmp_path / "inventory.yaml", ihttpd_allow=["10.0.0.0/8"])
    before = on_host(lab, "h13", "cat /usr/local/mgr5/etc/ihttpd.conf").stdout
    result = ispagent("run", str(INSTALL), "-i", str(path), "--limit", "h13", "--dry-run", state_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+\tallow_ip 10.0.0.0/8" in result.stdout and "+++ /usr/local/mgr5/etc/ihttpd.conf (wanted)" in result.stdout
    assert on_host(lab, "h13", "cat /usr/local/mgr5/etc/ihttpd.conf").stdout == before

    audit = ispagent(
        "run",
        str(AUDIT),
        "-i",
        str(path),
        "--limit",
        "h13",
        "--report-json",
        str(tmp_path / "a.json"),
        state_dir=tmp_path,
    )
    assert audit.returncode == 1  # the inventory now wants another ihttpd.conf: drift
    assert (
        "config:/usr/local/mgr5/etc/ihttpd.conf: missing or differs"
        in hosts_of(read_report(tmp_path / "a.json"))["h13"]["error"]
    )


def test_dropped_ssh_connection_install_finishes_on_the_server_and_resume_reattaches_without_a_second_installer(
    install_lab, tmp_path
):
    """Driven by events, not sleeps: install.sh is frozen (SIGSTOP to its process group) as soon as it
    runs, so the drop lands mid-install however slow the machine is, and it is thawed only once the
    resumed run's installer step has started, so the resume always finds it running."""
    lab, _ = install_lab
    name = "h20"
    reset_panel(lab, name)
    write_config(lab.dir / "services" / "mirror", install_seconds=4)
    # The install's process group (dash's kill takes `-PGID`, and no `--`); `pgrep -f` would match
    # the very shell that runs it.
    group = "$(cat /var/lib/ispagent/installer/install.pid)"
    try:
        path = inventory(lab, tmp_path / "inventory.yaml")
        env = {**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path)}
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                str(INSTALL),
                "-i",
                str(path),
                "--limit",
                name,
                "--report-json",
                str(tmp_path / "1.json"),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        wait_until(lambda: on_host(lab, name, f"kill -STOP -{group}").returncode == 0, run, "install.sh never started")
        # Drop our SSH connection: kill the host's per-connection sshd processes (not sshd itself, PID 1).
        sessions = on_host(lab, name, "pgrep -f 'sshd: root'").stdout.split()
        assert sessions
        on_host(lab, name, f"kill -9 {' '.join(sessions)}")
        out, err = run.communicate(timeout=120)
        first = read_report(tmp_path / "1.json")
        assert first["hosts"][0]["status"] == "unreachable", out + err
        assert on_host(lab, name, f"kill -0 {group}").returncode == 0, "the install died with the connection"

        resume = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                "--resume",
                first["run_id"],
                "--report-json",
                str(tmp_path / "2.json"),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        wait_until(
            lambda: installer_started_again(tmp_path, first["run_id"]), resume, "the resume never reached the installer"
        )
        assert on_host(lab, name, f"kill -CONT -{group}").returncode == 0
        out, err = resume.communicate(timeout=120)
        assert resume.returncode == 0, out + err
        host = read_report(tmp_path / "2.json")["hosts"][0]
        assert host["status"] == "changed" and host["installer"]["result"] == "installed"
        installer = next(step for step in host["steps"] if step["step"] == "installer")
        assert "reattached to a running install" in installer["message"]
        assert on_host(lab, name, "wc -l < /var/lib/ispagent/installer/launches").stdout.strip() == "1"
        assert on_host(lab, name, "wc -l < /var/lib/ispmanager-emulator/invocations").stdout.strip() == "1"
        log = (tmp_path / "runs" / first["run_id"] / "hosts" / f"{name}.log").read_text()
        assert "Installing coremanager" in log and "Your newly installed ispmanager panel is available at:" in log
    finally:
        on_host(lab, name, f"kill -CONT -{group}")
        write_config(lab.dir / "services" / "mirror", install_seconds=1)


def installer_started_again(state_dir: Path, run_id: str) -> bool:
    """Whether the journal shows the installer step started after the last (resumed) run start."""
    try:
        seen = events(state_dir, run_id)
    except ValueError:  # a line being written
        return False
    starts = [i for i, e in enumerate(seen) if e["event"] == "run_started"]
    return any(e["event"] == "step_started" and e.get("step") == "installer" for e in seen[starts[-1] :])
