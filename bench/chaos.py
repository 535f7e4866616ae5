"""Kill matrix: the install flow over lab hosts, SIGKILLed right after each kind of journal event,
resumed, then checked. Prints the chaos table.

    .venv/bin/python bench/chaos.py --hosts 5 --occurrences 1,3      # as root; brings up its own lab

Each trial: the hosts' panels removed, a fresh account in the lab's partner emulator (so no
license of an earlier trial can be adopted), a fresh state dir and ledger; `ispagent run
playbooks/install.yaml` with $ISPAGENT_KILL_AFTER=EVENT[:STEP][@N] (the journal SIGKILLs the agent
right after that event is durable); `ispagent run --resume`; then a second, fresh run. Checked
against the account, the hosts and the ledger: one live license per host, no duplicates, each
panel's licid = its account license, one billed activation per license (none lost), the resume
exits 0 and the second run changes nothing and orders nothing, no traceback anywhere.

A benchmark, not a test: it never gates on wall time. tests/test_chaos_on_lab.py runs a reduced
matrix in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.lab import Lab  # noqa: E402
from agent.lab.services import inventory_vars  # noqa: E402

INSTALL = REPO / "playbooks" / "install.yaml"
STEPS = ("facts", "preflight", "license", "installer", "configure", "verify", "report")
# Every kind of event the install flow journals, with the step for step events.
KILL_POINTS = ("run_started", "host_started",
               *(f"step_started:{step}" for step in STEPS), *(f"step_finished:{step}" for step in STEPS),
               "host_finished", "batch_finished")
ONCE_PER_RUN = ("run_started", "batch_finished")  # one batch: there is no second of these
RESET_PANEL = (
    "pid=$(cat /var/lib/ispagent/installer/install.pid 2>/dev/null) && kill -9 -$pid 2>/dev/null; "
    "pid=$(cat /usr/local/mgr5/var/run/ihttpd.pid 2>/dev/null) && kill -9 $pid 2>/dev/null; "
    "rm -rf /usr/local/mgr5 /var/lib/ispagent /var/lib/ispmanager-emulator /etc/apt/sources.list.d/exosoft.list; true"
)
MGRCTL = "/usr/local/mgr5/sbin/mgrctl"
CONTROL_NODE_FAULTS = {
    "ledger locked": {"lock_ledger": True},
    "partner 429 + Retry-After": {"partner_faults": {"rate_limit_rate": 0.4, "retry_after": 1}},
    "partner slow (2-4 s a call)": {"partner_faults": {"latency": [2, 4]}},
    "partner 5xx/reset/drop": {"partner_faults": {"error_rate": 0.2, "reset_rate": 0.1, "drop_rate": 0.1}},
}


@dataclass
class Trial:
    scenario: str
    point: str
    hosts: int
    killed: bool = False
    faults: int = 0
    duplicates: int = 0
    unlicensed: int = 0
    lost_activations: int = 0
    tracebacks: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def kill_trial(lab: Lab, hosts, point: str, workdir: Path, scenario: str = "kill matrix") -> Trial:
    """One trial of the kill matrix (see the module's docstring)."""
    return fault_trial(lab, hosts, workdir, scenario, kill_after=point)


def fault_trial(lab: Lab, hosts, workdir: Path, scenario: str, *, kill_after: str | None = None,
                partner_faults: dict | None = None, lock_ledger: bool = False) -> Trial:
    """The install flow under one fault, finished (resumed) without it, then run again and checked.

    kill_after: SIGKILL right after that journal event; partner_faults: the lab partner emulator's
    faults for the first run; lock_ledger: another process holds the SQLite ledger's write lock for
    the whole first run (nothing may be ordered: the intent cannot be written).
    """
    began = time.monotonic()
    trial = Trial(scenario, kill_after or scenario, len(hosts))
    workdir.mkdir(parents=True, exist_ok=True)
    for host in hosts:
        lab.exec(host.name, ["sh", "-c", RESET_PANEL])
    service_vars = inventory_vars(lab.dir)
    credentials = _fresh_account(lab, workdir)
    ledger_path = workdir / "ledger.sqlite"
    inventory = _inventory(lab, hosts, workdir, {**service_vars, "partner_credentials_file": str(credentials),
                                                "ledger_path": str(ledger_path)})
    state = workdir / "state"
    holder = _hold_ledger_lock(ledger_path) if lock_ledger else None
    injected_before = sum(_partner_injected(lab).values())
    if partner_faults:
        _partner_faults(lab, partner_faults)
    try:
        first = _cli(["run", str(INSTALL), "-i", str(inventory)], state, kill_after=kill_after)
    finally:
        if partner_faults:
            _partner_faults(lab, {})
        if holder:
            holder.kill()
            holder.wait()
    trial.killed = first.returncode == -9
    trial.faults = 1 if (trial.killed or holder) else sum(_partner_injected(lab).values()) - injected_before
    outputs = [first]
    if holder and _account(service_vars, credentials):
        trial.problems.append("licenses were ordered while the ledger could not take the intent")
    run_id = _run_id(state)
    if first.returncode != 0:
        # A stopped run is resumed; a finished one with activations unconfirmed (4) is run again,
        # which retries them.
        again = ["--resume", run_id] if first.returncode != 4 else [str(INSTALL), "-i", str(inventory)]
        resumed = _cli(["run", *again, "--report-json", str(workdir / "resumed.json")], state)
        outputs.append(resumed)
        if resumed.returncode not in (0, 4):
            trial.problems.append(f"resume exit {resumed.returncode}: {_last_line(resumed)}")
        else:
            report = json.loads((workdir / "resumed.json").read_text())
            bad = [h["name"] for h in report["hosts"] if h["status"] not in ("ok", "changed")]
            if bad:
                trial.problems.append(f"resume exit {resumed.returncode} but hosts {bad} not ok")
    elif kill_after:
        trial.problems.append(f"{kill_after} never happened: the first run ended {first.returncode}")
    account_before = _account(service_vars, credentials)
    second = _cli(["run", str(INSTALL), "-i", str(inventory), "--report-json", str(workdir / "second.json")], state)
    outputs.append(second)
    if second.returncode != 0:
        trial.problems.append(f"second run exit {second.returncode}: {_last_line(second)}")
    else:
        changed = [h["name"] for h in json.loads((workdir / "second.json").read_text())["hosts"] if h["status"] != "ok"]
        if changed:
            trial.problems.append(f"second run changed {changed}")
    account = _account(service_vars, credentials)
    if len(account) != len(account_before):
        trial.problems.append(f"second run ordered {len(account) - len(account_before)} license(s)")
    _check_invariants(lab, hosts, account, ledger_path, trial)
    trial.tracebacks = sum(1 for out in outputs if "Traceback" in out.stdout + out.stderr)
    trial.seconds = time.monotonic() - began
    return trial


def _hold_ledger_lock(path: Path) -> subprocess.Popen:
    """Another process with the SQLite ledger's write lock (created with its schema first)."""
    from agent.ledger import LicenseLedger

    with LicenseLedger(path):
        pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None); db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True); time.sleep(3600)\n"), str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _admin(lab: Lab, op: str, data: dict | None = None) -> dict:
    token = (lab.dir / "services" / "partner" / "admin-token").read_text().strip()
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(f"http://198.18.0.1:8443/admin/{op}", data=body,
                                     headers={"X-Admin-Token": token, "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def _partner_faults(lab: Lab, faults: dict) -> None:
    _admin(lab, "faults", faults)


def _partner_injected(lab: Lab) -> dict:
    return _admin(lab, "calls").get("injected", {})


def _check_invariants(lab: Lab, hosts, account: list, ledger_path: Path, trial: Trial) -> None:
    from agent.ledger import LicenseLedger

    by_ip = Counter(lic.ip for lic in account)
    trial.duplicates = sum(count - 1 for count in by_ip.values() if count > 1)
    trial.unlicensed = sum(1 for host in hosts if by_ip[host.address] == 0)
    for host in hosts:
        ids = [lic.id for lic in account if lic.ip == host.address]
        info = lab.exec(host.name, ["sh", "-c", f"{MGRCTL} -m ispmgr license.info 2>/dev/null"]).stdout
        licid = next((line.split("=", 1)[1] for line in info.splitlines() if line.startswith("licid=")), "")
        if ids and licid != ids[0]:
            trial.problems.append(f"{host.name}: panel licid {licid or 'none'}, account license {ids[0]}")
    with LicenseLedger(ledger_path) as ledger:
        activations = Counter(event.license_id for event in ledger.billing_events() if event.kind == "activation")
    held = {lic.id for lic in account}
    trial.lost_activations = sum(1 for license_id in held if activations[license_id] == 0)
    extra = {license_id: n for license_id, n in activations.items() if license_id not in held or n > 1}
    if extra:
        trial.problems.append(f"billed activations not matching one account license each: {extra}")


def _fresh_account(lab: Lab, workdir: Path) -> Path:
    """A new account in the lab's partner emulator; its `user:password` file (0600)."""
    user = f"chaos-{secrets.token_hex(4)}@lab.example"
    password = _admin(lab, "account", {"user": user})["password"]
    path = workdir / "credentials"
    path.touch(mode=0o600)
    path.write_text(f"{user}:{password}\n")
    return path


def _account(service_vars: dict, credentials: Path) -> list:
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    with PartnerClient(settings_from_vars({**service_vars, "partner_credentials_file": str(credentials)})) as client:
        return [lic for lic in client.list() if lic.live]


def _inventory(lab: Lab, hosts, workdir: Path, vars: dict) -> Path:
    data = {
        "ssh": {"known_hosts": str(lab.known_hosts_path), "connect_timeout": 5},
        "defaults": {"user": "root", "identity_file": str(lab.identity_file),
                     "vars": {"edition": "lite", "period": "monthly", "release": "stable",
                              "installer_url": "http://198.18.0.1:8080/install.sh", **vars}},
        "hosts": {h.name: {"address": h.address, "vars": {"fqdn": h.fqdn}} for h in hosts},
    }
    path = workdir / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(args: list[str], state: Path, kill_after: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state)}
    env.pop("ISPAGENT_KILL_AFTER", None)
    if kill_after:
        env["ISPAGENT_KILL_AFTER"] = kill_after
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600)


def _run_id(state: Path) -> str:
    runs = sorted((state / "runs").glob("*/run.json"))
    return runs[-1].parent.name if runs else ""


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1][:200] if lines else ""


def table(trials: list[Trial]) -> str:
    """The chaos table: one row per scenario."""
    rows = [("scenario", "trials", "hosts", "faults injected", "duplicates", "hosts without license",
             "lost activations", "tracebacks", "other problems", "wall time")]
    for scenario in dict.fromkeys(t.scenario for t in trials):
        group = [t for t in trials if t.scenario == scenario]
        rows.append((scenario, str(len(group)), str(sum(t.hosts for t in group)),
                     str(sum(t.faults for t in group)), str(sum(t.duplicates for t in group)),
                     str(sum(t.unlicensed for t in group)), str(sum(t.lost_activations for t in group)),
                     str(sum(t.tracebacks for t in group)), str(sum(len(t.problems) for t in group)),
                     f"{sum(t.seconds for t in group):.0f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=5, help="lab hosts per trial")
    parser.add_argument("--occurrences", default="1",
                        help="comma-separated N: kill after the Nth event of each kind (e.g. 1,3 for 5 hosts)")
    parser.add_argument("--points", default=",".join(KILL_POINTS), help="kill points, comma-separated")
    parser.add_argument("--control-node", action="store_true", help="also the control-node faults (ledger locked, partner"
                        " 429 + Retry-After, slow partner calls)")
    args = parser.parse_args()
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-chaos-")))
    if lab.busy_elsewhere():
        print(f"a lab is up in {lab.busy_elsewhere()}: wait for it, or take it down with"
              f" `ispagent lab down --dir {lab.busy_elsewhere()}`", file=sys.stderr)
        return 2
    trials: list[Trial] = []
    try:
        lab.up(args.hosts)
        hosts = lab.hosts[: args.hosts]
        for nth in [int(n) for n in args.occurrences.split(",")]:
            for point in args.points.split(","):
                if nth > 1 and point in ONCE_PER_RUN:
                    continue
                name = f"{point}@{nth}"
                trial = kill_trial(lab, hosts, name, lab.dir / "chaos" / name.replace(":", "-"))
                trials.append(trial)
                print(f"{name:<28} killed={trial.killed!s:<5} {trial.seconds:5.1f} s"
                      f" {'; '.join(trial.problems) or 'ok'}", flush=True)
        if args.control_node:
            for name, fault in CONTROL_NODE_FAULTS.items():
                trial = fault_trial(lab, hosts, lab.dir / "chaos" / name.replace(" ", "-"), name, **fault)
                trials.append(trial)
                print(f"{name:<28} faults={trial.faults:<4} {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}",
                      flush=True)
    finally:
        lab.down()
    print()
    print(table(trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
