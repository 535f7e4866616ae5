"""Unattended operation on the lab: the timer's ExecStart by hand, a SIGKILL with stdout piped,
from-ansible driving a run, and a 20-host drift-only reprovision with metrics and the HTML report."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from htmlkit import dump_dom, screenshot
from labkit import REPO, SMOKE, events, ispagent, on_host, read_report, write_inventory
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.lab

MGR = "/usr/local/mgr5"
RESET_PANEL = (
    "pid=$(cat /var/lib/ispagent/installer/install.pid 2>/dev/null) && kill -9 -$pid 2>/dev/null; "
    f"pid=$(cat {MGR}/var/run/ihttpd.pid 2>/dev/null) && kill -9 $pid 2>/dev/null; "
    f"rm -rf {MGR} /var/lib/ispagent /var/lib/ispmanager-emulator /etc/apt/sources.list.d/exosoft.list; true"
)


def metric_values(path: Path) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def test_scheduled_units_verify_and_their_exec_start_performs_the_run(lab, tmp_path):
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    units, state = tmp_path / "systemd", tmp_path / "state"
    added = ispagent(
        "schedule",
        "add",
        str(SMOKE),
        "-i",
        str(inventory),
        "--name",
        "lab-smoke",
        "--unit-dir",
        str(units),
        "--state-dir",
        str(state),
        "--metrics-file",
        str(tmp_path / "smoke.prom"),
        "--ispagent",
        str(Path(sys.executable).parent / "ispagent"),
        state_dir=tmp_path,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    service, timer = units / "ispagent-lab-smoke.service", units / "ispagent-lab-smoke.timer"
    verified = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    lines = service.read_text().splitlines()
    setting = {
        line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines if "=" in line and not line.startswith("#")
    }
    (assignment,) = shlex.split(setting["Environment"])  # systemd quotes the whole KEY=VALUE, as a shell word
    key, value = assignment.split("=", 1)
    assert key == "ISPAGENT_STATE_DIR"
    env = {**os.environ, key: value}
    run = subprocess.run(shlex.split(setting["ExecStart"]), capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        run.stdout.strip().splitlines()[-1].startswith("run ") and "finished: 6 host(s)" in run.stdout
    )  # -q: summary only
    assert "ispagent: run " in run.stderr  # the run id, for --resume
    journals = list((state / "runs").iterdir())
    assert len(journals) == 1 and (journals[0] / "events.jsonl").exists()
    assert metric_values(tmp_path / "smoke.prom")[("ispagent_run_hosts", ("result", "failed"))] == 0
    prune = subprocess.run(shlex.split(setting["ExecStopPost"]), capture_output=True, text=True, env=env)
    assert prune.returncode == 0 and "removed 0 run(s)" in prune.stdout


def test_sigkill_with_stdout_piped_still_leaves_a_resumable_run_id(lab, tmp_path):
    for host in lab.hosts:
        on_host(lab, host.name, "rm -rf /srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", str(SMOKE), "-i", str(inventory), "--forks", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path)},
    )
    first = process.stdout.readline()  # a pipe: block-buffered before this issue, so this line never came
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert first.startswith("run ") and ": starting on 6 host(s)" in first, first
    run_id = first.split()[1].rstrip(":")
    assert f"ispagent: run {run_id} started" in process.stderr.read()
    journaled = events(tmp_path, run_id)
    assert journaled[0]["event"] == "run_started"
    assert not any(e["event"] == "run_finished" for e in journaled)
    resumed = ispagent("run", "--resume", run_id, "--report-json", str(tmp_path / "r.json"), state_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_report(tmp_path / "r.json")["summary"]["failed"] == 0
    assert all(on_host(lab, h.name, "test -s /srv/ispagent-smoke/hello.sum").returncode == 0 for h in lab.hosts)


@pytest.mark.parametrize("kind", ["ini", "yaml"])
def test_from_ansible_inventory_passes_check_and_drives_a_lab_run(lab, tmp_path, kind):
    source = tmp_path / "ansible"
    (source / "group_vars").mkdir(parents=True)
    (source / "host_vars").mkdir()
    names = [host.name for host in lab.hosts]
    if kind == "ini":
        hosts = "\n".join(f"{h.name} ansible_host={h.address}" for h in lab.hosts)
        (source / "hosts").write_text(
            f"[first]\n{hosts.splitlines()[0]}\n[rest]\n"
            + "\n".join(hosts.splitlines()[1:])
            + "\n[lab:children]\nfirst\nrest\n"
        )
    else:
        rest = "".join(f"        {h.name}: {{ansible_host: {h.address}}}\n" for h in lab.hosts[1:])
        first = lab.hosts[0]
        (source / "hosts").write_text(
            f"all:\n  children:\n    first:\n      hosts:\n        {first.name}: "
            f"{{ansible_host: {first.address}}}\n    rest:\n      hosts:\n{rest}"
        )
    (source / "group_vars" / "all.yml").write_text(
        f"ansible_user: root\nansible_ssh_private_key_file: {lab.identity_file}\nansible_python_interpreter: auto\n"
        "edition: lite\nperiod: monthly\nrelease: stable\n"
    )
    for host in lab.hosts:
        (source / "host_vars" / f"{host.name}.yml").write_text(f"fqdn: {host.fqdn}\n")
    out = tmp_path / "fleet.yaml"
    made = ispagent(
        "inventory",
        "from-ansible",
        str(source / "hosts"),
        "-o",
        str(out),
        "--known-hosts",
        str(lab.known_hosts_path),
        state_dir=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert "left out ansible_python_interpreter" in made.stderr
    check = ispagent("inventory", "check", "-i", str(out), "--ssh-config", "/dev/null", state_dir=tmp_path)
    assert check.returncode == 0 and f"{len(names)} of {len(names)} hosts" in check.stdout, check.stdout + check.stderr
    run = ispagent(
        "run",
        str(SMOKE),
        "-i",
        str(out),
        "--ssh-config",
        "/dev/null",
        "--limit",
        "rest",
        "--report-json",
        str(tmp_path / "r.json"),
        state_dir=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = read_report(tmp_path / "r.json")
    assert [h["name"] for h in report["hosts"]] == names[1:]
    assert all(h["status"] in ("ok", "changed") for h in report["hosts"])


DRIFT = {
    "h5": f"echo 'Option EditedByHand' >> {MGR}/etc/ispmgr.conf.d/ispagent.conf",  # config edited
    "h9": f"kill $(cat {MGR}/var/run/ihttpd.pid)",  # service stopped
    "h14": f"rm {MGR}/etc/ispagent-mgrctl.calls",  # file removed
}
BROKEN = {name: f"rm {MGR}/etc/ihttpd.conf && mkdir {MGR}/etc/ihttpd.conf" for name in ("h2", "h11", "h17")}


# What an --only-drifted run may start on a clean host: sshd's own for the connection, the host
# shell, and facts, preflight and verify with 3 each (a subshell and two commands: hostname -f and
# ip; mgrctl and ip; mgrctl and sha256sum). bench/cheap_audit.py measured 18 on every sampled host
# of 100 (the code before this bound started 69 for preflight alone).
AUDIT_PROCESSES_PER_HOST = 20


def last_pid(lab, name: str) -> int:
    """The last process (or thread) id the host's PID namespace handed out (ns_last_pid)."""
    return int(on_host(lab, name, "cat /proc/sys/kernel/ns_last_pid").stdout)


@pytest.fixture
def twenty_panels(lab, tmp_path):
    """20 lab hosts with installed, licensed panels (install.yaml against the lab's partner account)."""
    from agent.lab.mirror import write_config
    from agent.lab.services import inventory_vars

    mirror = lab.dir / "services" / "mirror"
    lab.up(20)
    try:
        for host in lab.hosts:
            on_host(lab, host.name, RESET_PANEL)
        write_config(
            mirror, license_url=f"http://{lab.bridge_address}:8443", install_seconds=1, license_retry_delay=0.2
        )
        hosts = {
            h.name: {
                "address": h.address,
                "vars": {
                    "fqdn": h.fqdn,
                    "installer_url": f"http://{lab.bridge_address}:8080/install.sh",
                    **inventory_vars(lab.dir, lab.bridge_address),
                },
            }
            for h in lab.hosts
        }
        inventory = write_inventory(lab, tmp_path / "inventory.yaml", hosts=hosts)
        install = ispagent("run", str(REPO / "playbooks" / "install.yaml"), "-i", str(inventory), state_dir=tmp_path)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr
        yield inventory
    finally:
        for host in lab.hosts:
            on_host(lab, host.name, RESET_PANEL + f"; rm -rf {MGR}")
        (mirror / "config.json").unlink(missing_ok=True)
        lab.up(6)


def test_twenty_hosts_drift_on_three_only_drifted_run_touches_exactly_those_and_metrics_say_3_of_20(
    lab, tmp_path, twenty_panels
):
    for name, command in DRIFT.items():
        assert on_host(lab, name, command).returncode == 0, name
    reprovision = REPO / "playbooks" / "reprovision.yaml"
    metrics, report_json = tmp_path / "drift.prom", tmp_path / "drift.json"
    run = ispagent(
        "run",
        str(reprovision),
        "-i",
        str(twenty_panels),
        "--only-drifted",
        "--metrics-file",
        str(metrics),
        "--report-json",
        str(report_json),
        "--report-html",
        str(tmp_path / "drift.html"),
        state_dir=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    report = read_report(report_json)
    hosts = {host["name"]: host for host in report["hosts"]}
    drifted = {name for name, host in hosts.items() if host["drift"]["drifted"]}
    assert drifted == set(DRIFT)
    assert "ispagent.conf: missing or differs" in hosts["h5"]["drift"]["reasons"][0]
    assert "ihttpd: nothing listens on TCP port 1500" in hosts["h9"]["drift"]["reasons"][0]
    assert "ispagent-mgrctl.calls: missing or differs" in hosts["h14"]["drift"]["reasons"][0]
    touched = {name for name, host in hosts.items() if any(step["changed"] for step in host["steps"])}
    assert touched == set(DRIFT)
    for name, host in hosts.items():
        ran = [step["step"] for step in host["steps"]]
        if name in DRIFT:
            assert ran[:3] == ["audit:facts", "audit:preflight", "audit:verify"] and "configure" in ran, ran
            assert all(check["ok"] for check in host["verify"].values()), (name, host["verify"])
        else:
            assert ran == ["audit:facts", "audit:preflight", "audit:verify"], (name, ran)
    panel_service = next(s for s in hosts["h9"]["steps"] if s["step"] == "panel_service")
    assert panel_service["status"] == "changed" and "panel started" in panel_service["message"]
    assert on_host(lab, "h9", "ss -ltn | grep -q ':1500 '").returncode == 0
    assert on_host(lab, "h14", f"test -s {MGR}/etc/ispagent-mgrctl.calls").returncode == 0
    assert on_host(lab, "h5", f"grep -c EditedByHand {MGR}/etc/ispmgr.conf.d/ispagent.conf").stdout.strip() == "0"
    values = metric_values(metrics)
    assert values[("ispagent_run_drift_hosts", ("state", "drifted"))] == 3
    assert values[("ispagent_run_drift_hosts", ("state", "clean"))] == 17
    assert values[("ispagent_run_hosts", ("result", "changed"))] == 3 == report["summary"]["changed"]
    assert values[("ispagent_run_hosts", ("result", "ok"))] == 17 == report["summary"]["ok"]
    assert values[("ispagent_run_licenses", ("action", "existing"))] == 3  # the license step ran on the 3 only
    assert values[("ispagent_activations_unconfirmed",)] == 0 and values[("ispagent_run_exit_code",)] == 0
    assert values[("ispagent_turnover_month",)] > 0  # the install run's 20 activations
    assert "note: drift: 3 drifted (h5, h9, h14), 17 clean (left alone)" in run.stdout

    clean = ("h1", "h10", "h20")
    first = {name: last_pid(lab, name) for name in clean}
    before = {name: last_pid(lab, name) for name in clean}  # before - first: what one reading starts
    again = ispagent(
        "run",
        str(reprovision),
        "-i",
        str(twenty_panels),
        "--only-drifted",
        "--metrics-file",
        str(metrics),
        state_dir=tmp_path,
    )
    assert again.returncode == 0 and "note: drift: 0 drifted, 20 clean" in again.stdout, again.stdout[-2000:]
    # The audit of a clean host, sshd's own processes for the connection included: 69 for preflight and
    # a dozen for verify before they asked in one program each.
    audit_processes = {name: last_pid(lab, name) - before[name] - (before[name] - first[name]) for name in clean}
    assert all(count <= AUDIT_PROCESSES_PER_HOST for count in audit_processes.values()), audit_processes

    for name, command in BROKEN.items():
        assert on_host(lab, name, command).returncode == 0, name
    page = tmp_path / "failures.html"
    failing = ispagent(
        "run",
        str(reprovision),
        "-i",
        str(twenty_panels),
        "--only-drifted",
        "--report-html",
        str(page),
        "--metrics-file",
        str(metrics),
        state_dir=tmp_path,
    )
    assert failing.returncode == 1, failing.stdout[-2000:]
    dom = dump_dom(page)
    order = [line.split('data-host="')[1].split('"')[0] for line in dom.splitlines() if 'data-host="' in line]
    assert len(order) == 20 and set(order[:3]) == set(BROKEN)
    failed_table = dom[dom.index('id="failed"') : dom.index('id="hosts"')]
    assert failed_table.count('class="failed-host"') == 3 and "<td>configure</td>" in failed_table
    assert metric_values(metrics)[("ispagent_run_hosts", ("result", "failed"))] == 3
    png = screenshot(page, tmp_path / "failures.png", height=2200)
    if os.environ.get("ISPAGENT_REPORT_SCREENSHOT"):  # keep it for a person to look at
        shutil.copy(png, os.environ["ISPAGENT_REPORT_SCREENSHOT"])
        shutil.copy(page, Path(os.environ["ISPAGENT_REPORT_SCREENSHOT"]).with_suffix(".html"))
