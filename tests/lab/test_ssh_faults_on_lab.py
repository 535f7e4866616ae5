"""SSH faults in the lab (agent/lab/faults.py), each applied inside one host's namespaces or to its
processes: packet loss (nftables), a slow link (tc tbf; this kernel has no netem, so no fixed delay and
no reordering), sshd stopped (SIGSTOP) mid-command, sshd killed mid-command, the host restarted
mid-install. Each is set off by what happens on the host (a command running, an install stage
reached), not by a clock. The run is never held past a command timeout, a lost host is reported
unreachable with a one-line reason, and --resume finishes what the fault left."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from labkit import REPO, SMOKE, ispagent, on_host, read_report, read_run_id, wait_until, write_inventory, write_playbook

from agent.lab import faults
from agent.lab.faults import parse_fault

pytestmark = pytest.mark.lab

from harness import chaos_faults

# A multi-line command (a YAML block), as playbooks write them: its timeout must still be one line.
SLOW_COMMAND = "sleep 1.2\ntouch /root/fault-done\n"


def _smoke_twice(lab, tmp_path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    for host in lab.hosts:
        on_host(lab, host.name, "rm -rf /srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    runs = []
    for n in (1, 2):
        runs.append(
            ispagent(
                "run",
                str(SMOKE),
                "-i",
                str(inventory),
                "--report-json",
                str(tmp_path / f"{n}.json"),
                state_dir=tmp_path,
            )
        )
    return runs[0], runs[1]


def _both_finished_and_the_second_changed_nothing(first, second, tmp_path) -> None:
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert read_report(tmp_path / "2.json")["summary"]["changed"] == 0
    assert "Traceback" not in first.stderr + second.stderr


def test_slow_links_on_two_hosts_still_finish_and_rerun_changes_nothing(lab, tmp_path):
    try:
        for name in ("h2", "h3"):
            faults.slow_link(lab, name)
        first, second = _smoke_twice(lab, tmp_path)
    finally:
        for name in ("h2", "h3"):
            faults.clear_network(lab, name)
    _both_finished_and_the_second_changed_nothing(first, second, tmp_path)


def test_random_packet_loss_both_ways_and_inbound_only_still_finishes_and_rerun_changes_nothing(lab, tmp_path):
    try:
        faults.packet_loss(lab, "h2", 10)
        faults.packet_loss(lab, "h3", 10, output=False)
        first, second = _smoke_twice(lab, tmp_path)
        dropped = {name: faults.dropped_packets(lab, name) for name in ("h2", "h3")}
    finally:
        for name in ("h2", "h3"):
            faults.clear_network(lab, name)
    _both_finished_and_the_second_changed_nothing(first, second, tmp_path)
    assert all(count > 0 for count in dropped.values()), f"the loss rules dropped nothing: {dropped}"


def _run_until_the_command_runs(lab, tmp_path, name: str) -> tuple[subprocess.Popen, str]:
    """`run` of facts + SLOW_COMMAND on every host (command timeout 4 s), once it runs on `name`."""
    for host in lab.hosts:
        on_host(lab, host.name, "rm -f /root/fault-done")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", ssh={"command_timeout": 4})
    playbook = write_playbook(
        tmp_path / "p.yaml", ["facts", {"shell": {"command": SLOW_COMMAND, "creates": "/root/fault-done"}}]
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "--report-json",
            str(tmp_path / "1.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path)},
    )
    run_id = read_run_id(process)
    wait_until(lambda: on_host(lab, name, "pgrep -x sleep").returncode == 0, process, "the command never started")
    return process, run_id


def _first_run_of(tmp_path, process: subprocess.Popen, name: str) -> tuple[dict, str]:
    output = process.communicate(timeout=120)[0]
    report = {h["name"]: h for h in read_report(tmp_path / "1.json")["hosts"]}
    assert all(h["status"] in ("ok", "changed") for n, h in report.items() if n != name), output
    assert process.returncode == 1 and "Traceback" not in output, output
    error = report[name]["error"] or ""
    assert error and "\n" not in error and len(error) < 300, report[name]
    return report[name], output


def _resume_finishes(lab, tmp_path, run_id: str, name: str) -> None:
    resumed = ispagent("run", "--resume", run_id, "--report-json", str(tmp_path / "2.json"), state_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert on_host(lab, name, "test -e /root/fault-done").returncode == 0


def test_sshd_stopped_mid_command_costs_only_the_command_timeout_and_resume_finishes_it(lab, tmp_path):
    name = "h2"
    process, run_id = _run_until_the_command_runs(lab, tmp_path, name)
    # Every sshd of the host frozen, the listener (its PID 1) too: nothing on it answers.
    stopped = faults.stop_sshd(lab, name, None)
    try:
        host, output = _first_run_of(tmp_path, process, name)
    finally:
        faults.continue_sshd(stopped)
    assert host["status"] in ("failed", "unreachable") and "timed out" in host["error"], host
    _resume_finishes(lab, tmp_path, run_id, name)


def test_sshd_killed_mid_command_is_unreachable_not_failed_and_resume_finishes_it(lab, tmp_path):
    name = "h3"
    process, run_id = _run_until_the_command_runs(lab, tmp_path, name)
    faults.kill_sshd(lab, name)  # and it stays down until revived
    try:
        host, output = _first_run_of(tmp_path, process, name)
    finally:
        faults.revive_sshd(lab, name)
    assert host["status"] == "unreachable", host
    _resume_finishes(lab, tmp_path, run_id, name)


def test_host_restarted_mid_install_is_resumed_to_a_whole_panel_with_one_license_and_one_installer_at_a_time(
    lab, tmp_path
):
    """The power cut lands after install.sh fetched the license, before the panel package is in: the
    disk holds a licensed half-panel and dpkg's journal of the cut-off unpack. The resume must run
    install.sh again (not take the half-panel for an installed one), with the license already bought."""
    hosts = lab.hosts[:2]
    trial, first = chaos_faults.ssh_fault_trial(lab, hosts, {"h1": parse_fault("restart")}, tmp_path)
    print("\n" + chaos_faults.chaos.table([trial]))
    assert trial.faults == 1, trial.problems
    assert first["h1"]["status"] == "unreachable", first["h1"]
    assert (trial.duplicates, trial.unlicensed, trial.lost_activations, trial.tracebacks) == (0, 0, 0, 0), trial
    assert trial.problems == []
    launches = on_host(lab, "h1", "wc -l < /var/lib/ispagent/installer/launches").stdout.strip()
    assert launches == "2", f"install.sh launched {launches} times on the restarted host"


def test_postgresql_ledger_stopped_while_licensing_orders_nothing_without_an_intent_and_resume_licenses_each_host_once(
    lab, tmp_path
):
    """A private PostgreSQL cluster, really stopped (`pg_ctl stop -m immediate`) once the first host
    has its license: no license in the account without its intent in the ledger, one-line errors, and
    after the cluster is back `run --resume` and a second run leave exactly one license per host."""
    trial = chaos_faults.postgres_trial(lab, lab.hosts[:4], tmp_path, stop_after=1)
    print("\n" + chaos_faults.chaos.table([trial]))
    assert trial.faults == 1, "the run had ended before the ledger was stopped"
    assert (trial.duplicates, trial.unlicensed, trial.lost_activations, trial.tracebacks) == (0, 0, 0, 0), trial
    assert trial.problems == []
