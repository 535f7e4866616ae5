"""SSH faults in the lab: a slow link (tc tbf, 256 kbit/s with up to 400 ms of queueing, on both ends of
a host's veth; this machine's kernel has no netem, so no loss or reordering) and
a host whose sshd stops answering mid-command (SIGSTOP, not killed). The run finishes, a stopped host
costs no more than its command timeout, and --resume completes what the fault left."""

from __future__ import annotations

import subprocess
import time

import pytest

from agent.lab import network
from labkit import SMOKE, ispagent, on_host, read_report, write_inventory, write_playbook

pytestmark = pytest.mark.lab
SLOW_LINK = ["tbf", "rate", "256kbit", "burst", "4kb", "latency", "400ms"]


def _slow_link(lab, name: str, action: str) -> None:
    host = lab.host(name)
    shape = [] if action == "del" else SLOW_LINK
    for prefix, device in (([], network.veth_name(host.index)), (["ip", "netns", "exec", host.netns], "eth0")):
        subprocess.run([*prefix, "tc", "qdisc", action, "dev", device, "root", *shape], check=action != "del",
                       capture_output=True)


def test_slow_links_on_two_hosts_still_finish_and_rerun_changes_nothing(lab, tmp_path):
    for host in lab.hosts:
        on_host(lab, host.name, "rm -rf /srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    faulty = ["h2", "h3"]
    try:
        for name in faulty:
            _slow_link(lab, name, "add")
        first = ispagent("run", str(SMOKE), "-i", str(inventory), "--report-json", str(tmp_path / "1.json"),
                         state_dir=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        second = ispagent("run", str(SMOKE), "-i", str(inventory), "--report-json", str(tmp_path / "2.json"),
                          state_dir=tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
        assert read_report(tmp_path / "2.json")["summary"]["changed"] == 0
        assert "Traceback" not in first.stderr + second.stderr
    finally:
        for name in faulty:
            _slow_link(lab, name, "del")


def test_sshd_stopped_mid_command_costs_only_the_command_timeout_and_resume_finishes_it(lab, tmp_path):
    for host in lab.hosts:
        on_host(lab, host.name, "rm -f /root/stopped-done")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", ssh={"command_timeout": 4})
    playbook = write_playbook(tmp_path / "p.yaml", [
        "facts", {"shell": {"command": "sleep 1.2; touch /root/stopped-done", "creates": "/root/stopped-done"}}])
    name = "h2"
    env_state = {"ISPAGENT_STATE_DIR": str(tmp_path)}
    import os
    import sys

    from labkit import REPO, read_run_id, wait_until

    process = subprocess.Popen([sys.executable, "-m", "agent", "run", str(playbook), "-i", str(inventory),
                                "--report-json", str(tmp_path / "1.json")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=REPO, env={**os.environ, **env_state})
    began = time.monotonic()
    try:
        run_id = read_run_id(process)
        # Freeze the host's SSH session processes (sshd, PID 1, keeps listening) once our command runs.
        wait_until(lambda: on_host(lab, name, "pgrep -x sleep").returncode == 0, process, "the command never started")
        on_host(lab, name, "pkill -STOP -f '[s]shd: root'")
        output = process.communicate(timeout=120)[0]
        seconds = time.monotonic() - began
    finally:
        on_host(lab, name, "pkill -CONT -f '[s]shd: root'")
    report = {h["name"]: h for h in read_report(tmp_path / "1.json")["hosts"]}
    assert report[name]["status"] in ("failed", "unreachable"), output
    assert "timed out" in (report[name]["error"] or ""), report[name]
    assert all(h["status"] in ("ok", "changed") for n, h in report.items() if n != name), output
    assert seconds < 4 + 20, f"the stopped host held the run {seconds:.0f} s"
    assert process.returncode == 1 and "Traceback" not in output

    resumed = ispagent("run", "--resume", run_id, "--report-json", str(tmp_path / "2.json"), state_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert on_host(lab, name, "test -e /root/stopped-done").returncode == 0
