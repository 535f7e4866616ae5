"""End to end: the real CLI runs playbooks over the lab's sshd hosts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from labkit import (
    SMOKE,
    events,
    ispagent,
    on_host,
    read_report,
    read_run_id,
    wait_until,
    write_inventory,
    write_playbook,
)

from agent.runner.report import report_schema

pytestmark = pytest.mark.lab
HARNESS_PATH = Path(__file__).parents[1]  # where `python -m harness.crashrun` is found


def _clean(lab, path: str) -> None:
    for host in lab.hosts:
        on_host(lab, host.name, f"rm -rf {path}")


def test_smoke_playbook_second_run_changes_nothing_and_report_matches_schema(lab, tmp_path):
    _clean(lab, "/srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    first = ispagent(
        "run", str(SMOKE), "-i", str(inventory), "--report-json", str(tmp_path / "1.json"), state_dir=tmp_path
    )
    assert first.returncode == 0, first.stdout + first.stderr
    report = read_report(tmp_path / "1.json")
    jsonschema.validate(report, report_schema())
    assert report["summary"]["changed"] == len(lab.hosts)
    rendered = on_host(lab, "h2", "cat /srv/ispagent-smoke/hello.conf").stdout
    assert "fqdn = h2.lab.example" in rendered and "os = Debian GNU/Linux 12 (bookworm)" in rendered
    assert on_host(lab, "h2", "stat -c %a /srv/ispagent-smoke/motd").stdout.strip() == "640"

    second = ispagent(
        "run",
        str(SMOKE),
        "-i",
        str(inventory),
        "--report-json",
        str(tmp_path / "2.json"),
        "--junit",
        str(tmp_path / "2.xml"),
        state_dir=tmp_path,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    report = read_report(tmp_path / "2.json")
    jsonschema.validate(report, report_schema())
    assert report["summary"] == {
        "hosts": len(lab.hosts),
        "ok": len(lab.hosts),
        "changed": 0,
        "failed": 0,
        "unreachable": 0,
        "skipped": 0,
    }
    assert all(not step["changed"] for host in report["hosts"] for step in host["steps"])
    junit = (tmp_path / "2.xml").read_text()
    assert junit.count("<testcase ") == len(lab.hosts) * 4 and 'failures="0"' in junit


def test_dry_run_changes_nothing_on_the_hosts(lab, tmp_path):
    _clean(lab, "/srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    result = ispagent(
        "run",
        str(SMOKE),
        "-i",
        str(inventory),
        "--dry-run",
        "--report-json",
        str(tmp_path / "r.json"),
        state_dir=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for host in lab.hosts:
        assert on_host(lab, host.name, "test -e /srv/ispagent-smoke").returncode == 1, host.name
    report = read_report(tmp_path / "r.json")
    assert report["dry_run"] is True
    messages = [s["message"] for s in report["hosts"][0]["steps"]]
    assert "would update /srv/ispagent-smoke/motd (created with /srv/ispagent-smoke)" in messages
    assert "+++ /srv/ispagent-smoke/hello.conf (wanted)" in result.stdout  # a diff per host


def test_changed_host_key_is_refused_and_reported_unreachable(lab, tmp_path):
    target = lab.hosts[0]
    other = lab.hosts[1]
    known = lab.known_hosts_path.read_text().splitlines()
    other_key = next(line.split(None, 1)[1] for line in known if line.split()[0] == other.address)
    forged = [f"{target.address} {other_key}" if line.split()[0] == target.address else line for line in known]
    (tmp_path / "known_hosts").write_text("\n".join(forged) + "\n")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", ssh={"known_hosts": str(tmp_path / "known_hosts")})
    playbook = write_playbook(tmp_path / "p.yaml", ["facts"])
    result = ispagent(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--limit",
        f"{target.name},{other.name}",
        "--report-json",
        str(tmp_path / "r.json"),
        state_dir=tmp_path,
    )
    assert result.returncode == 1
    hosts = {h["name"]: h for h in read_report(tmp_path / "r.json")["hosts"]}
    assert hosts[target.name]["status"] == "unreachable"
    assert "host key changed" in hosts[target.name]["error"]
    assert hosts[other.name]["status"] == "ok"


def test_unknown_host_key_is_refused_unless_accept_new(lab, tmp_path):
    (tmp_path / "known_hosts").write_text("")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", ssh={"known_hosts": str(tmp_path / "known_hosts")})
    playbook = write_playbook(tmp_path / "p.yaml", ["facts"])
    host = lab.hosts[0].name
    strict = ispagent(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "-l",
        host,
        "--report-json",
        str(tmp_path / "r.json"),
        state_dir=tmp_path,
    )
    assert strict.returncode == 1
    assert "is not in" in read_report(tmp_path / "r.json")["hosts"][0]["error"]
    assert (tmp_path / "known_hosts").read_text() == ""
    accepted = ispagent(
        "run", str(playbook), "-i", str(inventory), "-l", host, "--host-key-policy", "accept-new", state_dir=tmp_path
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert (tmp_path / "known_hosts").read_text().startswith(f"{lab.hosts[0].address} ssh-ed25519 ")


def test_unreachable_host_is_reported_as_unreachable(lab, tmp_path):
    hosts = {
        "good": {"address": lab.hosts[0].address},
        "closed-port": {"address": lab.hosts[1].address, "port": 2299},
    }
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", hosts=hosts)
    playbook = write_playbook(tmp_path / "p.yaml", ["facts"])
    result = ispagent(
        "run", str(playbook), "-i", str(inventory), "--report-json", str(tmp_path / "r.json"), state_dir=tmp_path
    )
    assert result.returncode == 1
    report = read_report(tmp_path / "r.json")
    by_name = {h["name"]: h for h in report["hosts"]}
    assert by_name["good"]["status"] == "ok"
    assert by_name["closed-port"]["status"] == "unreachable"
    assert (
        "cannot connect to root@" in by_name["closed-port"]["error"] and "3 attempts" in by_name["closed-port"]["error"]
    )
    assert report["summary"]["unreachable"] == 1


def test_max_fail_percent_stops_the_next_batch(lab, tmp_path):
    _clean(lab, "/root/batch-mark")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    first_batch = {lab.hosts[0].name, lab.hosts[1].name}
    playbook = write_playbook(
        tmp_path / "p.yaml",
        [
            {"shell": {"command": f"test $(hostname) != {lab.hosts[0].name}"}},  # fails on the first host only
            {"shell": {"command": "touch /root/batch-mark"}},
        ],
    )
    result = ispagent(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--forks",
        "2",
        "--batch-size",
        "2",
        "--max-fail-percent",
        "25",
        "--report-json",
        str(tmp_path / "r.json"),
        state_dir=tmp_path,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    report = read_report(tmp_path / "r.json")
    assert report["status"] == "aborted"
    statuses = {h["name"]: h["status"] for h in report["hosts"]}
    assert statuses[lab.hosts[0].name] == "failed" and statuses[lab.hosts[1].name] == "changed"
    for host in lab.hosts:
        marked = on_host(lab, host.name, "test -e /root/batch-mark").returncode == 0
        assert marked == (host.name == lab.hosts[1].name), host.name
        if host.name not in first_batch:
            assert statuses[host.name] == "skipped"


def test_killed_run_resumes_only_unfinished_hosts(lab, tmp_path):
    _clean(lab, "/root/resume-count /root/resume-done")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    # A command in flight when the agent dies goes on on the host (sshd does not kill it); the
    # `creates` guard is what keeps the resumed run from doing its work a second time.
    playbook = write_playbook(
        tmp_path / "p.yaml",
        [
            "facts",
            {
                "shell": {
                    "command": "sleep 1.5; echo once >> /root/resume-count; touch /root/resume-done",
                    "creates": "/root/resume-done",
                }
            },
        ],
    )
    # Killed by the agent's own journal right after the first host_finished is durable: the first
    # hosts have finished, the next ones are in their sleep, however loaded the machine is.
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(tmp_path), "PYTHONPATH": str(HARNESS_PATH)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.crashrun",
            "host_finished",
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "--forks",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    run_id = read_run_id(process)
    output = process.communicate()[0]
    assert process.returncode == -9, output
    # The commands in flight go on on their hosts: wait for them (no sleep left) instead of a fixed time.
    for host in lab.hosts:
        wait_until(lambda: on_host(lab, host.name, "pgrep -x sleep").returncode != 0, what=f"{host.name}'s command")
    finished_before = {e["host"] for e in events(tmp_path, run_id) if e["event"] == "host_finished"}
    assert 1 <= len(finished_before) < len(lab.hosts), output

    resumed = ispagent("run", "--resume", run_id, "--report-json", str(tmp_path / "r.json"), state_dir=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    all_events = events(tmp_path, run_id)
    second_start = max(i for i, e in enumerate(all_events) if e["event"] == "run_started")
    rerun = {e["host"] for e in all_events[second_start:] if e["event"] == "host_started"}
    assert rerun == {h.name for h in lab.hosts} - finished_before
    for host in lab.hosts:
        assert on_host(lab, host.name, "cat /root/resume-count").stdout == "once\n", host.name
    report = read_report(tmp_path / "r.json")
    summary = report["summary"]
    assert report["run_id"] == run_id and summary["ok"] + summary["changed"] == len(lab.hosts)
    record = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
    assert record["status"] == "finished" and len(record["resumed_at"]) == 1


def _journal_shape(state_dir, run_id: str) -> list[tuple]:
    """A run's journal events without times and ids, host by host in order: what must match."""
    keep = ("event", "host", "step", "status", "changed", "message")
    shaped = [
        tuple((key, event.get(key)) for key in keep if key in event)
        for event in events(state_dir, run_id)
        if event.get("event") not in ("run_started", "run_finished")
    ]
    return sorted(shaped, key=lambda items: dict(items).get("host") or "")


def test_a_run_built_in_python_from_objects_gives_the_journal_events_of_the_cli(lab, tmp_path):
    import yaml

    from agent.inventory.model import Endpoint, Host, SshSettings
    from agent.runner.playbook import playbook_from_data
    from agent.runner.run import RunOptions, RunPlan, start_run

    _clean(lab, "/srv/ispagent-smoke")
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    cli = ispagent("run", str(SMOKE), "-i", str(inventory), state_dir=tmp_path / "cli")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    cli_run = read_run_id_from(cli)

    _clean(lab, "/srv/ispagent-smoke")
    vars = {"edition": "lite", "period": "monthly", "release": "stable"}
    hosts = [
        Host(h.name, Endpoint(h.address, 22, "root", lab.identity_file), vars={**vars, "fqdn": h.fqdn})
        for h in lab.hosts
    ]
    playbook = playbook_from_data(yaml.safe_load(SMOKE.read_text()), SMOKE.parent, name="smoke")
    plan = RunPlan(
        playbook,
        hosts,
        RunOptions(state_dir=tmp_path / "python"),
        SshSettings(known_hosts=lab.known_hosts_path, connect_timeout=5),
    )
    result = start_run(plan, listener=lambda event: None)
    assert result.exit_code == 0 and result.count("changed") == len(lab.hosts)
    python_shape = _journal_shape(tmp_path / "python", result.run_id)
    assert python_shape == _journal_shape(tmp_path / "cli", cli_run)
    assert len(python_shape) == len(lab.hosts) * (2 + 2 * len(playbook.steps)) + 1  # + batch_finished


def test_the_first_batch_handshakes_on_sockets_dialed_before_paramiko(lab, tmp_path, monkeypatch):
    """The hosts that start at once (here the first batch of 4) are dialed as the run starts; the
    rest connect on their own, as before. Every host ends ok either way."""
    from agent.runner.run import RunOptions, RunPlan, start_run
    from agent.transport import dialing

    taken: dict[str, bool] = {}
    real_take = dialing.DialedSockets.take

    def take(self, endpoint, timeout):
        sock = real_take(self, endpoint, timeout)
        taken[endpoint.address] = sock is not None
        return sock

    monkeypatch.setattr(dialing.DialedSockets, "take", take)
    inventory = write_inventory(lab, tmp_path / "inventory.yaml")
    playbook = write_playbook(tmp_path / "p.yaml", ["facts"])
    plan = RunPlan.from_files(playbook, inventory, RunOptions(state_dir=tmp_path, batch_size="4"))
    result = start_run(plan, listener=lambda event: None)
    assert result.exit_code == 0 and result.count("ok") == len(lab.hosts)
    assert taken == {host.address: index < 4 for index, host in enumerate(lab.hosts)}


def read_run_id_from(completed: subprocess.CompletedProcess) -> str:
    return re.search(r"\b(\d{8}T\d{6}-[0-9a-f]{6})\b", completed.stdout + completed.stderr).group(1)
