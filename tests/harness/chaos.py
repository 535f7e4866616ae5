"""Kill matrix: the install flow over lab hosts, SIGKILLed right after each kind of journal event,
resumed, then checked. Prints the chaos table.

    PYTHONPATH=tests .venv/bin/python -m harness.chaos --hosts 5 --occurrences 1,3      # as root; brings up its own lab

Each trial: the hosts' panels removed, a fresh account in the lab's partner emulator (so no
license of an earlier trial can be adopted), a fresh state dir and ledger; `ispagent run
playbooks/install.yaml` through tests/harness/crashrun.py (EVENT[:STEP][@N]: the CLI, given a journal
watch that SIGKILLs the agent right after that event is durable); `ispagent run --resume`; then a second, fresh run. Checked
against the account, the hosts and the ledger: one live license per host, no duplicates, each
panel's licid = its account license, one billed activation per license (none lost), the resume
exits 0 and the second run changes nothing and orders nothing, no traceback anywhere.

Chained mode (`--chain K`), for many points over many hosts: one rollout carries up to K kills.
The first run is killed at P1, `run --resume` is killed at P2, the next resume at P3, ... until the
points are used up; a last resume finishes the run, then the same checks and second run as above.
After every killed segment the account and the ledger are checked for anything duplicated so far.
A point is EVENT[:STEP] with an occurrence given relative to the segment it lands in: `first`, a
fraction (`1/4`, `1/2`) or `last` of the events of that kind the segment will journal (known from the
journal: hosts not finished, steps not finished or redone on resume); `--random N --seed S` adds N
points of a random kind at a random occurrence. Only points that fired count: the agent died with
SIGKILL and its segment of the journal holds the Nth such event.

    PYTHONPATH=tests .venv/bin/python -m harness.chaos --hosts 50 --chain 20 --fractions first,1/4,1/2,last --random 30

A harness, not a test: it never gates on wall time. tests/lab/test_chaos_on_lab.py runs a reduced
matrix in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

from agent.lab import Lab  # noqa: E402
from agent.lab.mirror import write_config  # noqa: E402
from agent.lab.services import inventory_vars  # noqa: E402
from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS  # noqa: E402

INSTALL = REPO / "playbooks" / "install.yaml"
STEPS = ("facts", "preflight", "license", "installer", "configure", "verify", "report")
# Every kind of event the install flow journals, with the step for step events, in the flow's order.
KILL_POINTS = (
    "run_started",
    "host_started",
    *(f"step_started:{step}" for step in STEPS),
    *(f"step_finished:{step}" for step in STEPS),
    "host_finished",
    "batch_finished",
    "run_finished",
)
FLOW_ORDER = (
    "run_started",
    "host_started",
    *(f"step_{edge}:{step}" for step in STEPS for edge in ("started", "finished")),
    "host_finished",
    "batch_finished",
    "run_finished",
)
ONCE_PER_RUN = ("run_started", "batch_finished", "run_finished")  # one batch: there is no second of these
# Steps a resumed run does again on a host it finishes (they feed later steps): their events repeat.
RERUN_ON_RESUME = ("facts", "preflight", "license", "verify")
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
    fired: list[str] = field(default_factory=list)  # kill points that fired: EVENT[:STEP]@N (chained: @N/of)
    unfired: list[str] = field(default_factory=list)  # chained: points placed whose segment ended first


@dataclass(frozen=True)
class ChainPoint:
    """A kill point whose occurrence is fixed only when its segment starts: `first`, a fraction of
    the events of its kind that segment will journal (`1/4`, `1/2`, `last` = 1), or a random one."""

    kind: str  # EVENT[:STEP]
    at: str  # first | last | a fraction like 1/4 | random:<0..1>

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.at.split(':')[0]}"

    def occurrence(self, expected: int) -> int:
        if self.at == "first":
            return 1
        if self.at.startswith("random:"):
            share = float(self.at.split(":", 1)[1])
        else:
            share = 1.0 if self.at == "last" else float(Fraction(self.at))
        return min(expected, max(1, math.ceil(share * expected)))


@dataclass
class _Rollout:
    """One trial's lab-side setup: hosts reset, a fresh account, state dir, ledger and inventory."""

    service_vars: dict
    credentials: Path
    ledger_path: Path
    inventory: Path
    state: Path


def reset_panels(lab: Lab, hosts) -> None:
    """Each host's panel, installer state and license removed, all hosts at once."""
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        list(pool.map(lambda host: lab.exec(host.name, ["sh", "-c", RESET_PANEL]), hosts))


def _prepare(lab: Lab, hosts, workdir: Path) -> _Rollout:
    workdir.mkdir(parents=True, exist_ok=True)
    reset_panels(lab, hosts)
    service_vars = inventory_vars(lab.dir, lab.bridge_address)
    credentials = _fresh_account(lab, workdir)
    ledger_path = workdir / "ledger.sqlite"
    inventory = _inventory(
        lab,
        hosts,
        workdir,
        {**service_vars, "partner_credentials_file": str(credentials), "ledger_path": str(ledger_path)},
    )
    return _Rollout(service_vars, credentials, ledger_path, inventory, workdir / "state")


def kill_trial(lab: Lab, hosts, point: str, workdir: Path, scenario: str = "kill matrix") -> Trial:
    """One trial of the kill matrix (see the module's docstring)."""
    return fault_trial(lab, hosts, workdir, scenario, kill_after=point)


def fault_trial(
    lab: Lab,
    hosts,
    workdir: Path,
    scenario: str,
    *,
    kill_after: str | None = None,
    partner_faults: dict | None = None,
    lock_ledger: bool = False,
) -> Trial:
    """The install flow under one fault, finished (resumed) without it, then run again and checked.

    kill_after: SIGKILL right after that journal event; partner_faults: the lab partner emulator's
    faults for the first run; lock_ledger: another process holds the SQLite ledger's write lock for
    the whole first run (nothing may be ordered: the intent cannot be written).
    """
    began = time.monotonic()
    trial = Trial(scenario, kill_after or scenario, len(hosts))
    rollout = _prepare(lab, hosts, workdir)
    holder = _hold_ledger_lock(rollout.ledger_path) if lock_ledger else None
    injected_before = sum(_partner_injected(lab).values())
    if partner_faults:
        _partner_faults(lab, partner_faults)
    try:
        first = _cli(["run", str(INSTALL), "-i", str(rollout.inventory)], rollout.state, kill_after=kill_after)
    finally:
        if partner_faults:
            _partner_faults(lab, {})
        if holder:
            holder.kill()
            holder.wait()
    trial.killed = first.returncode == -9
    if trial.killed and kill_after:
        trial.fired.append(kill_after)
    trial.faults = 1 if (trial.killed or holder) else sum(_partner_injected(lab).values()) - injected_before
    outputs = [first]
    if holder and _account(rollout.service_vars, rollout.credentials):
        trial.problems.append("licenses were ordered while the ledger could not take the intent")
    if first.returncode != 0:
        outputs.append(_finish_run(rollout, workdir, first.returncode, trial))
    elif kill_after:
        trial.problems.append(f"{kill_after} never happened: the first run ended {first.returncode}")
    _second_run_and_check(lab, hosts, rollout, workdir, trial, outputs)
    trial.seconds = time.monotonic() - began
    return trial


def chain_trial(
    lab: Lab,
    hosts,
    points: list[ChainPoint],
    workdir: Path,
    scenario: str = "kill matrix, chained",
    max_kills: int | None = None,
) -> tuple[Trial, list[ChainPoint]]:
    """One rollout killed at several points in turn (see the module's docstring).

    Points are taken in order; one whose kind the next segment cannot journal (its hosts or steps
    are done) is left for another rollout. Returns the trial and the points not used.
    """
    began = time.monotonic()
    trial = Trial(scenario, ",".join(point.name for point in points), len(hosts))
    rollout = _prepare(lab, hosts, workdir)
    names = [host.name for host in hosts]
    outputs: list[subprocess.CompletedProcess] = []
    left = list(points)
    run_id = ""
    while left and (max_kills is None or len(trial.fired) < max_kills):
        expected = expected_events(_events(rollout.state, run_id), names)
        point = next((p for p in left if expected.get(p.kind, 0) > 0), None)
        if point is None:
            break
        left.remove(point)
        spec = f"{point.kind}@{point.occurrence(expected[point.kind])}"
        args = ["--resume", run_id] if run_id else [str(INSTALL), "-i", str(rollout.inventory)]
        segment = _cli(["run", *args], rollout.state, kill_after=spec)
        outputs.append(segment)
        run_id = run_id or _run_id(rollout.state)
        if segment.returncode != -9:
            # Fewer such events than the journal promised (a host failed or was unreachable first):
            # not a kill point; left for another rollout, and this one's run finished as it ended.
            trial.unfired.append(
                f"{spec}/{expected[point.kind]} (the segment ended {segment.returncode}: {_last_line(segment)})"
            )
            left.insert(0, point)
            break
        if not _fired(_events(rollout.state, run_id), spec):
            trial.problems.append(f"{spec}: the agent died but its journal does not hold that event")
        trial.fired.append(f"{spec}/{expected[point.kind]}")  # the Nth of that many in its segment
        _check_so_far(rollout, hosts, trial, after=spec)
    trial.killed = bool(trial.fired)
    trial.faults = len(trial.fired)
    if run_id and outputs[-1].returncode != 0:
        outputs.append(_finish_run(rollout, workdir, outputs[-1].returncode, trial))
    elif not run_id:
        trial.problems.append("no point could be placed: nothing ran")
    _second_run_and_check(lab, hosts, rollout, workdir, trial, outputs)
    trial.seconds = time.monotonic() - began
    return trial, left


def expected_events(events: list[dict], hosts: list[str]) -> dict[str, int]:
    """How many events of each kind (EVENT[:STEP]) the next segment of a run will journal, judged
    from the journal so far: hosts not finished, and on them the steps not finished or redone."""
    done: dict[str, bool] = {}
    steps: dict[str, set] = {}
    for event in events:
        kind, host = event.get("event"), event.get("host")
        if kind == "host_started":
            done[host] = False
        elif kind == "host_finished":
            done[host] = event.get("status") in ("ok", "changed")
        elif kind == "step_finished" and event.get("status") != "failed":
            steps.setdefault(host, set()).add(event.get("step"))
    todo = [host for host in hosts if not done.get(host)]
    expected = {
        "run_started": 1,
        "run_finished": 1,
        "batch_finished": 1 if todo else 0,
        "host_started": len(todo),
        "host_finished": len(todo),
    }
    for step in STEPS:
        count = sum(1 for host in todo if step in RERUN_ON_RESUME or step not in steps.get(host, ()))
        expected[f"step_started:{step}"] = expected[f"step_finished:{step}"] = count
    return expected


def _fired(events: list[dict], spec: str) -> bool:
    """Whether the last segment of the journal (from its last run_started on) holds the Nth event of `spec`."""
    where, _, nth = spec.partition("@")
    kind, _, step = where.partition(":")
    starts = [i for i, event in enumerate(events) if event.get("event") == "run_started"]
    segment = events[starts[-1] :] if starts else events
    seen = sum(1 for event in segment if event.get("event") == kind and (not step or event.get("step") == step))
    return seen >= int(nth or 1)


def _events(state: Path, run_id: str) -> list[dict]:
    path = state / "runs" / run_id / "events.jsonl"
    if not run_id or not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _check_so_far(rollout: _Rollout, hosts, trial: Trial, after: str) -> None:
    """Between two segments: no host with two live licenses, no license for a host not in the
    rollout, no license billed twice and no activation of a license the account does not hold."""
    from agent.ledger import LicenseLedger

    account = _account(rollout.service_vars, rollout.credentials)
    by_ip = Counter(lic.ip for lic in account)
    addresses = {host.address for host in hosts}
    duplicates = sum(count - 1 for count in by_ip.values() if count > 1)
    trial.duplicates = max(trial.duplicates, duplicates)
    if duplicates:
        trial.problems.append(f"after {after}: {duplicates} duplicate license(s) in the account")
    strangers = sorted(ip for ip in by_ip if ip not in addresses)
    if strangers:
        trial.problems.append(f"after {after}: licenses for addresses not in the rollout: {strangers}")
    if not rollout.ledger_path.exists():
        return
    with LicenseLedger(rollout.ledger_path) as ledger:
        activations = Counter(event.license_id for event in ledger.billing_events() if event.kind == "activation")
    held = {lic.id for lic in account}
    extra = {license_id: n for license_id, n in activations.items() if license_id not in held or n > 1}
    if extra:
        trial.problems.append(f"after {after}: billed activations not matching one account license each: {extra}")


def _finish_run(rollout: _Rollout, workdir: Path, returncode: int, trial: Trial) -> subprocess.CompletedProcess:
    """Finish a stopped run with --resume (a finished one with activations unconfirmed, exit 4, is
    run again, which retries them); a problem unless every host ends ok."""
    run_id = _run_id(rollout.state)
    again = ["--resume", run_id] if returncode != 4 else [str(INSTALL), "-i", str(rollout.inventory)]
    resumed = _cli(["run", *again, "--report-json", str(workdir / "resumed.json")], rollout.state)
    if resumed.returncode not in (0, 4):
        trial.problems.append(f"resume exit {resumed.returncode}: {_last_line(resumed)}")
    else:
        report = json.loads((workdir / "resumed.json").read_text())
        bad = [h["name"] for h in report["hosts"] if h["status"] not in ("ok", "changed")]
        if bad:
            trial.problems.append(f"resume exit {resumed.returncode} but hosts {bad} not ok")
    return resumed


def _second_run_and_check(
    lab: Lab, hosts, rollout: _Rollout, workdir: Path, trial: Trial, outputs: list[subprocess.CompletedProcess]
) -> None:
    account_before = _account(rollout.service_vars, rollout.credentials)
    second = _cli(
        ["run", str(INSTALL), "-i", str(rollout.inventory), "--report-json", str(workdir / "second.json")],
        rollout.state,
    )
    outputs.append(second)
    if second.returncode != 0:
        trial.problems.append(f"second run exit {second.returncode}: {_last_line(second)}")
    else:
        changed = [h["name"] for h in json.loads((workdir / "second.json").read_text())["hosts"] if h["status"] != "ok"]
        if changed:
            trial.problems.append(f"second run changed {changed}")
    account = _account(rollout.service_vars, rollout.credentials)
    if len(account) != len(account_before):
        trial.problems.append(f"second run ordered {len(account) - len(account_before)} license(s)")
    duplicates_so_far = trial.duplicates
    _check_invariants(lab, hosts, account, rollout.ledger_path, trial)
    trial.duplicates = max(trial.duplicates, duplicates_so_far)
    # A step's internal error goes to its host log with a traceback: count those too.
    host_logs = [log.read_text(errors="replace") for log in (rollout.state / "runs").glob("*/hosts/*.log")]
    trial.tracebacks = sum(
        1 for text in [*(out.stdout + out.stderr for out in outputs), *host_logs] if "Traceback" in text
    )


def _hold_ledger_lock(path: Path) -> subprocess.Popen:
    """Another process with the SQLite ledger's write lock (created with its schema first)."""
    from agent.ledger import LicenseLedger

    with LicenseLedger(path):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None); db.execute('BEGIN EXCLUSIVE')\n"
                "print('locked', flush=True); time.sleep(3600)\n"
            ),
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _admin(lab: Lab, op: str, data: dict | None = None) -> dict:
    token = (lab.dir / "services" / "partner" / "admin-token").read_text().strip()
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        f"http://{lab.bridge_address}:8443/admin/{op}",
        data=body,
        headers={"X-Admin-Token": token, "Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def _partner_faults(lab: Lab, faults: dict) -> None:
    _admin(lab, "faults", faults)


@contextmanager
def orders_held_after(lab: Lab, orders: int):
    """The lab's partner account takes `orders` confirmed orders and holds the next ones until the
    block ends; yields a callable telling whether an order waits at the gate now. A fault set off
    while an order waits lands between two orders, whatever the machine's speed."""
    _admin(lab, "order-gate", {"hold_after": orders})
    try:
        yield lambda: _admin(lab, "order-gate", {})["held"]
    finally:
        _admin(lab, "order-gate", {"release": True})


def _partner_injected(lab: Lab) -> dict:
    return _admin(lab, "calls").get("injected", {})


def _check_invariants(lab: Lab, hosts, account: list, ledger_path: Path, trial: Trial) -> None:
    from agent.ledger import LicenseLedger

    by_ip = Counter(lic.ip for lic in account)
    trial.duplicates = sum(count - 1 for count in by_ip.values() if count > 1)
    trial.unlicensed = sum(1 for host in hosts if by_ip[host.address] == 0)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        infos = list(
            pool.map(
                lambda host: lab.exec(host.name, ["sh", "-c", f"{MGRCTL} -m ispmgr license.info 2>/dev/null"]).stdout,
                hosts,
            )
        )
    for host, info in zip(hosts, infos):
        ids = [lic.id for lic in account if lic.ip == host.address]
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
        "defaults": {
            "user": "root",
            "identity_file": str(lab.identity_file),
            "vars": {
                "edition": "lite",
                "period": "monthly",
                "release": "stable",
                "installer_url": f"http://{lab.bridge_address}:8080/install.sh",
                **vars,
            },
        },
        "hosts": {h.name: {"address": h.address, "vars": {"fqdn": h.fqdn}} for h in hosts},
    }
    path = workdir / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(args: list[str], state: Path, kill_after: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state), "PYTHONPATH": str(REPO / "tests")}
    command = ["-m", "harness.crashrun", kill_after] if kill_after else ["-m", "agent"]
    return subprocess.run(
        [sys.executable, *command, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


def _run_id(state: Path) -> str:
    runs = sorted((state / "runs").glob("*/run.json"))
    return runs[-1].parent.name if runs else ""


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[-1][:200] if lines else ""


def table(trials: list[Trial]) -> str:
    """The chaos table: one row per scenario."""
    rows = [
        (
            "scenario",
            "trials",
            "hosts",
            "faults injected",
            "duplicates",
            "hosts without license",
            "lost activations",
            "tracebacks",
            "other problems",
            "wall time",
        )
    ]
    for scenario in dict.fromkeys(t.scenario for t in trials):
        group = [t for t in trials if t.scenario == scenario]
        rows.append(
            (
                scenario,
                str(len(group)),
                str(sum(t.hosts for t in group)),
                str(sum(t.faults for t in group)),
                str(sum(t.duplicates for t in group)),
                str(sum(t.unlicensed for t in group)),
                str(sum(t.lost_activations for t in group)),
                str(sum(t.tracebacks for t in group)),
                str(sum(len(t.problems) for t in group)),
                f"{sum(t.seconds for t in group):.0f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def chain_points(fractions: list[str], random_points: int, seed: int) -> list[ChainPoint]:
    """Every kind of event at each of `fractions` (first, 1/4, 1/2, last), then `random_points` of a
    random kind at a random occurrence (seeded), each group in the flow's order.

    Random points are drawn from the events a segment has once per host: a random one of a run's
    only run_started is its first, which `first` covers; and a rollout can place only one
    batch_finished (the resume after it has no host left), so each more would cost a rollout."""
    points = [
        ChainPoint(kind, at) for at in fractions for kind in FLOW_ORDER if at == "first" or kind not in ONCE_PER_RUN
    ]
    rng = random.Random(seed)
    per_host = [kind for kind in FLOW_ORDER if kind not in ONCE_PER_RUN]
    drawn = [ChainPoint(rng.choice(per_host), f"random:{rng.random():.3f}") for _ in range(random_points)]
    return points + sorted(drawn, key=lambda point: FLOW_ORDER.index(point.kind))


def run_chains(lab: Lab, hosts, points: list[ChainPoint], workdir: Path, chain: int, report=print) -> list[Trial]:
    """Rollouts of up to `chain` kills each until every point fired or none of those left can be placed."""
    trials: list[Trial] = []
    left = list(points)
    while left:
        trial, rest = chain_trial(lab, hosts, left, workdir / f"rollout-{len(trials) + 1}", max_kills=chain)
        trials.append(trial)
        report(
            f"rollout {len(trials)}: {len(trial.fired)} kills, {trial.seconds:5.1f} s,"
            f" {'; '.join(trial.problems) or 'ok'}\n  fired: {' '.join(trial.fired)}"
        )
        if trial.unfired:
            report(f"  did not fire: {'; '.join(trial.unfired)}")
        if len(rest) == len(left):  # nothing could be placed, or the first one never fired
            report(f"not placed: {' '.join(point.name for point in rest)}")
            break
        left = rest
    return trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=5, help="lab hosts per trial")
    parser.add_argument(
        "--occurrences",
        default="1",
        help="comma-separated N: kill after the Nth event of each kind (e.g. 1,3 for 5 hosts)",
    )
    parser.add_argument("--points", default=",".join(KILL_POINTS), help="kill points, comma-separated")
    parser.add_argument(
        "--chain",
        type=int,
        default=0,
        help="chained mode: up to this many kills per rollout (see --fractions, --random)",
    )
    parser.add_argument(
        "--fractions",
        default="first,1/4,1/2,last",
        help="chained mode: occurrences of each kind of event, relative to its segment",
    )
    parser.add_argument("--random", type=int, default=0, help="chained mode: this many points at random as well")
    parser.add_argument("--seed", type=int, default=1, help="chained mode: the random points' seed")
    parser.add_argument(
        "--install-seconds",
        type=float,
        default=0,
        help="how long the emulated installer takes (the lab's default is 1 s)",
    )
    parser.add_argument(
        "--control-node",
        action="store_true",
        help="also the control-node faults (ledger locked, partner 429 + Retry-After, slow partner calls)",
    )
    args = parser.parse_args()
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-chaos-")))  # a lab of its own, beside any other
    trials: list[Trial] = []
    os.environ[EXTENSIONS_ENV] = LAB_EXTENSIONS  # the order gate and admin routes this bench drives
    try:
        lab.up(args.hosts)
        write_config(lab.dir / "services" / "mirror", install_seconds=args.install_seconds)
        hosts = lab.hosts[: args.hosts]
        if args.chain:
            fractions = [at for at in args.fractions.split(",") if at]
            points = chain_points(fractions, args.random, args.seed)
            trials += run_chains(
                lab, hosts, points, lab.dir / "chaos", args.chain, report=lambda line: print(line, flush=True)
            )
        else:
            trials += _single_points(lab, hosts, args)
        if args.control_node:
            for name, fault in CONTROL_NODE_FAULTS.items():
                trial = fault_trial(lab, hosts, lab.dir / "chaos" / name.replace(" ", "-"), name, **fault)
                trials.append(trial)
                print(
                    f"{name:<28} faults={trial.faults:<4} {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}",
                    flush=True,
                )
    finally:
        lab.down()
    fired = [point for trial in trials for point in trial.fired]
    print()
    print(table(trials))
    print(f"\n{len(fired)} kill points fired ({len(set(fired))} distinct):")
    print(" ".join(fired))
    return 0


def _single_points(lab: Lab, hosts, args) -> list[Trial]:
    trials = []
    for nth in [int(n) for n in args.occurrences.split(",")]:
        for point in args.points.split(","):
            if nth > 1 and point in ONCE_PER_RUN:
                continue
            name = f"{point}@{nth}"
            trial = kill_trial(lab, hosts, name, lab.dir / "chaos" / name.replace(":", "-"))
            trials.append(trial)
            print(
                f"{name:<28} killed={trial.killed!s:<5} {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}",
                flush=True,
            )
    return trials


if __name__ == "__main__":
    sys.exit(main())
