"""SSH faults and a PostgreSQL ledger stopped mid-run, over the install flow on lab hosts. Prints
harness/chaos.py's chaos table.

    PYTHONPATH=tests .venv/bin/python -m harness.chaos_faults --hosts 50        # as root; brings up its own lab

SSH faults (agent/lab/faults.py) on 10 % of the hosts, one kind each, in turn: packet loss, a slow
link, sshd stopped (SIGSTOP) for longer than the command timeout, sshd killed (back after a while)
and the host restarted mid-install (a power cut once install.sh has fetched the license). Loss and
the slow link hold for the whole first run; the others are set off by what happens on the host
(install.sh running, or its license stage reached), not by a clock. After the first run every
fault is lifted, `run --resume` finishes what they left, and a second, fresh run must change and
order nothing. The PostgreSQL scenario: a private throwaway cluster (initdb in a temp dir, its own
port) is stopped with `pg_ctl stop -m immediate` once a tenth of the hosts have their license; nothing
may be ordered without its intent in the ledger, each error is one line; after the cluster is
started again `run --resume` finishes with one license per host. The state-dir scenario: the
journal and the SQLite ledger on a 64 MB tmpfs, filled up at the same moment, with the same rule
and checks once the disk has room again (the runs' output is kept in its work dir: first.out, later.out).

Checked like harness/chaos.py (its Trial, table and invariants): one license per host, no
duplicates, licid = account license, one billed activation per license, no traceback; plus, per
SSH fault, how the first run reported the host. A benchmark: it never gates on wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

from agent.lab import Lab  # noqa: E402
from agent.lab import faults as lab_faults  # noqa: E402
from agent.lab.faults import Fault, parse_fault  # noqa: E402
from agent.lab.mirror import DEFAULTS, write_config  # noqa: E402
from agent.lab.services import inventory_vars  # noqa: E402
from harness import chaos  # noqa: E402  (Trial, table, invariants)

INSTALL = REPO / "playbooks" / "install.yaml"
LICENSE_ONLY = REPO / "playbooks" / "license-only.yaml"
COMMAND_TIMEOUT = 8  # seconds: the inventory's ssh.command_timeout in the SSH fault runs
SSH_FAULTS = (
    parse_fault("loss:5"),
    parse_fault("slow"),
    parse_fault(f"sshd-stopped:{COMMAND_TIMEOUT * 3}"),
    parse_fault("sshd-killed:30"),
    parse_fault("restart"),
)
INSTALL_PID = "/var/lib/ispagent/installer/install.pid"
INSTALL_RUNNING = f'pid=$(cat {INSTALL_PID} 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid"'
LICENSED = "grep -qx panel /var/lib/ispmanager-emulator/stages"  # install.sh is past licctl fetch
# A restart lands at a known point: install.sh is frozen there first (its process group).
FREEZE_INSTALL = f"kill -STOP -$(cat {INSTALL_PID})"
MID_INSTALL = "! grep -qx done /var/lib/ispmanager-emulator/stages && [ ! -e /var/lib/ispagent/installer/install.rc ]"
INSTALL_SECONDS = 4.0  # the emulated install's length (two pauses of half of it): room to land mid-install
EVENT_WAIT = 240.0  # seconds a fault waits for its moment before it is called not injected


class Injector:
    """Set off each host's fault at its moment, on threads; `problems` says what never came."""

    def __init__(self, lab: Lab, faults: dict[str, Fault], run: subprocess.Popen) -> None:
        self.lab, self.faults, self.run = lab, faults, run
        self.injected: dict[str, str] = {}
        self.problems: list[str] = []
        self.stopped: dict[str, list[int]] = {}
        self.dropped: dict[str, int] = {}  # packets the loss rules dropped, by host
        self.at: dict[str, float] = {}  # when each fault was set off (time.time(), as the journal's "at")
        self._threads = [
            threading.Thread(target=self._inject, args=(name, fault), daemon=True)
            for name, fault in faults.items()
            if fault.kind not in ("loss", "slow")
        ]
        for name, fault in faults.items():
            if fault.kind in ("loss", "slow"):  # the whole first run under them
                lab_faults.apply_fault(lab, name, fault)
                self.injected[name] = str(fault)
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def lift(self) -> None:
        """End every fault still on (stopped sshd continued, killed sshd revived, rules removed)."""
        lab_faults.cancel_timers()
        for name, fault in self.faults.items():
            if fault.kind == "loss":
                self.dropped[name] = lab_faults.dropped_packets(self.lab, name)
            if name in self.stopped:
                lab_faults.continue_sshd(self.stopped[name])
            lab_faults.clear_network(self.lab, name)

    def _inject(self, name: str, fault: Fault) -> None:
        moment = LICENSED if fault.kind == "restart" else INSTALL_RUNNING
        deadline = time.monotonic() + EVENT_WAIT
        while not self._on_host(name, moment):
            if self.run.poll() is not None or time.monotonic() > deadline:
                self.problems.append(f"{name}: {fault} never injected (the moment never came)")
                return
            time.sleep(0.1)
        self.at[name] = time.time()
        if fault.kind == "restart":
            self._on_host(name, FREEZE_INSTALL)
            if not self._on_host(name, MID_INSTALL):
                self.problems.append(f"{name}: {fault} missed its moment (install.sh had ended)")
            self.lab.restart(name)
        elif fault.kind == "sshd-stopped":
            self.stopped[name] = lab_faults.stop_sshd(self.lab, name, fault.value)
        else:
            lab_faults.apply_fault(self.lab, name, fault)
        self.injected[name] = str(fault)

    def _on_host(self, name: str, command: str) -> bool:
        return self.lab.exec(name, ["sh", "-c", command]).returncode == 0


def ssh_fault_trial(
    lab: Lab, hosts, faults: dict[str, Fault], workdir: Path, scenario: str = "SSH faults"
) -> tuple[chaos.Trial, dict]:
    """The install flow with `faults` on some hosts, resumed without them, run again, checked.

    Returns the Trial and the first run's report entry of each faulty host (status, error).
    """
    began = time.monotonic()
    trial = chaos.Trial(scenario, ",".join(f"{n}={f}" for n, f in faults.items()), len(hosts))
    workdir.mkdir(parents=True, exist_ok=True)
    _reset(lab, hosts)
    service_vars = inventory_vars(lab.dir, lab.bridge_address)
    credentials = chaos._fresh_account(lab, workdir)
    ledger_path = workdir / "ledger.sqlite"
    inventory = _inventory(
        lab,
        hosts,
        workdir,
        {**service_vars, "partner_credentials_file": str(credentials), "ledger_path": str(ledger_path)},
    )
    state = workdir / "state"
    mirror = lab.dir / "services" / "mirror"
    write_config(mirror, install_seconds=INSTALL_SECONDS)
    first = _start(["run", str(INSTALL), "-i", str(inventory), "--report-json", str(workdir / "first.json")], state)
    injector = Injector(lab, faults, first)
    try:
        out, err = first.communicate(timeout=900)
        injector.join()
    finally:
        injector.lift()
        write_config(mirror, install_seconds=DEFAULTS["install_seconds"])
    trial.faults = len(injector.injected)
    trial.problems += injector.problems
    for name, count in injector.dropped.items():
        if count == 0:
            trial.problems.append(f"{name}: the loss rules dropped no packet")
    first_hosts = _report_hosts(workdir / "first.json")
    outputs = [out + err]
    for name, fault in faults.items():
        _judge_first_run(name, fault, first_hosts.get(name), trial)
    held = _held_after_fault(state, injector.at)
    for name, fault in faults.items():
        if fault.kind == "sshd-stopped" and name in held and held[name] >= fault.value:
            trial.problems.append(f"{name}: the run waited {held[name]:.0f} s for its stopped sshd")
    resumed = _finish_run(inventory, state, workdir, first.returncode, trial)
    if resumed is not None:
        outputs.append(resumed)
    second = _second_run(lab, hosts, inventory, state, workdir, service_vars, credentials, str(ledger_path), trial)
    outputs.append(second)
    trial.tracebacks = sum(1 for text in outputs if "Traceback" in text)
    trial.seconds = time.monotonic() - began
    return trial, {
        name: {**(first_hosts.get(name) or {}), "dropped": injector.dropped.get(name), "held": held.get(name)}
        for name in faults
    }


def _held_after_fault(state: Path, at: dict[str, float]) -> dict[str, float]:
    """Seconds from each host's fault to its host_finished event in the first run's journal."""
    runs = sorted((state / "runs").glob("*/events.jsonl"))
    held = {}
    for line in runs[0].read_text().splitlines() if runs else []:
        event = json.loads(line)
        if event.get("event") == "host_finished" and event.get("host") in at:
            held[event["host"]] = event["at"] - at[event["host"]]
    return held


def _reset(lab: Lab, hosts) -> None:
    """No panel, no install in progress, no dpkg journal a cut-off install left (chaos.RESET_PANEL+)."""
    for host in hosts:
        lab.exec(host.name, ["sh", "-c", chaos.RESET_PANEL + "; rm -f /var/lib/dpkg/updates/0000"])


def _judge_first_run(name: str, fault: Fault, host: dict | None, trial: chaos.Trial) -> None:
    """How the first run must report a host under `fault`."""
    if host is None:
        trial.problems.append(f"{name}: not in the first run's report")
        return
    status, error = host["status"], host.get("error") or ""
    if fault.kind in ("loss", "slow") and status not in ("ok", "changed"):
        trial.problems.append(f"{name} ({fault}): {status}: {error[:120]}")
    if fault.kind in ("sshd-killed", "restart") and status != "unreachable":
        trial.problems.append(f"{name} ({fault}): {status}, not unreachable: {error[:120]}")
    # Stopped mid-command: the command times out (failed); between two commands: the next session
    # cannot be opened (unreachable). Either way the host is let go and resumed later.
    if fault.kind == "sshd-stopped" and status not in ("failed", "unreachable"):
        trial.problems.append(f"{name} ({fault}): {status}: {error[:120]}")
    if "\n" in error:
        trial.problems.append(f"{name} ({fault}): a multi-line error")


def _finish_run(inventory: Path, state: Path, workdir: Path, returncode: int, trial: chaos.Trial) -> str | None:
    if returncode == 0:
        return None
    run_id = chaos._run_id(state)
    again = ["--resume", run_id] if returncode != 4 else [str(INSTALL), "-i", str(inventory)]
    resumed = chaos._cli(["run", *again, "--report-json", str(workdir / "resumed.json")], state)
    if resumed.returncode not in (0, 4):
        trial.problems.append(f"resume exit {resumed.returncode}: {chaos._last_line(resumed)}")
    else:
        bad = [h for h, v in _report_hosts(workdir / "resumed.json").items() if v["status"] not in ("ok", "changed")]
        if bad:
            trial.problems.append(f"resume exit {resumed.returncode} but hosts {bad} not ok")
    return resumed.stdout + resumed.stderr


def _second_run(lab, hosts, inventory, state, workdir, service_vars, credentials, ledger, trial) -> str:
    account_before = chaos._account(service_vars, credentials)
    second = chaos._cli(
        ["run", str(INSTALL), "-i", str(inventory), "--report-json", str(workdir / "second.json")], state
    )
    if second.returncode != 0:
        trial.problems.append(f"second run exit {second.returncode}: {chaos._last_line(second)}")
    else:
        changed = [h for h, v in _report_hosts(workdir / "second.json").items() if v["status"] != "ok"]
        if changed:
            trial.problems.append(f"second run changed {changed}")
    account = chaos._account(service_vars, credentials)
    if len(account) != len(account_before):
        trial.problems.append(f"second run ordered {len(account) - len(account_before)} license(s)")
    chaos._check_invariants(lab, hosts, account, ledger, trial)
    _check_panels(lab, hosts, trial)
    return second.stdout + second.stderr


PANEL_PACKAGE = "ispmanager-lite-common"  # the edition the bench installs (lite)


def _check_panels(lab: Lab, hosts, trial: chaos.Trial) -> None:
    """Each panel whole (its edition's package in, dpkg's journal empty) and no install.sh left running."""
    for host in hosts:
        state = lab.exec(
            host.name,
            [
                "sh",
                "-c",
                (
                    f"grep -qx {PANEL_PACKAGE} /usr/local/mgr5/etc/emulator-packages || echo missing-package; "
                    '[ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] && echo dpkg-interrupted; '
                    "[ \"$(pgrep -fc '[i]spagent-install')\" -gt 0 ] && echo installer-running; true"
                ),
            ],
        ).stdout.split()
        if state:
            trial.problems.append(f"{host.name}: {', '.join(state)}")


def postgres_trial(lab: Lab, hosts, workdir: Path, stop_after: int) -> chaos.Trial:
    """License step for `hosts` on a private PostgreSQL ledger stopped (immediate) after `stop_after`
    hosts have their license; then started again, resumed, run again and checked."""
    began = time.monotonic()
    trial, service_vars, credentials = _control_node_trial(lab, hosts, workdir, "PostgreSQL ledger stopped", stop_after)
    with ThrowawayPostgres() as pg:
        inventory = _inventory(
            lab, hosts, workdir, {**service_vars, "partner_credentials_file": str(credentials), "ledger_url": pg.url}
        )
        state = workdir / "state"

        def stop_the_ledger(running: bool) -> int:
            pg.stop()
            return 1 if running else 0

        first, out, err, trial.faults = _first_run_struck(
            lab,
            ["run", str(LICENSE_ONLY), "-i", str(inventory), "--report-json", str(workdir / "first.json")],
            state,
            stop_after,
            stop_the_ledger,
        )
        outputs = [out + err]
        ordered = chaos._account(service_vars, credentials)
        errors = [h.get("error") or "" for h in _report_hosts(workdir / "first.json").values() if h["status"] != "ok"]
        if any("\n" in e or len(e) > 400 for e in errors):
            trial.problems.append("an error of the stopped ledger is not one line")
        if not errors:
            trial.problems.append("no host failed: the ledger stopped too late")
        pg.start()
        _check_intents(pg.url, hosts, ordered, trial)
        resumed = _finish_license_run(state, workdir, first.returncode, trial)
        if resumed is not None:
            outputs.append(resumed)
        second = _second_license_run(lab, hosts, inventory, state, workdir, service_vars, credentials, pg.url, trial)
        outputs.append(second)
        trial.tracebacks = sum(1 for text in outputs if "Traceback" in text)
    trial.seconds = time.monotonic() - began
    return trial


def state_dir_full_trial(lab: Lab, hosts, workdir: Path, stop_after: int) -> chaos.Trial:
    """License step for `hosts` with the state dir (journal and SQLite ledger) on a small tmpfs that
    is filled up once `stop_after` hosts have their license; then given room again, resumed, run
    again and checked like the PostgreSQL trial. (Read-only cannot be set off mid-run here: Linux
    refuses to remount a file system read-only while the agent holds files open for writing.)"""
    began = time.monotonic()
    trial, service_vars, credentials = _control_node_trial(
        lab, hosts, workdir, "state dir full (64 MB tmpfs)", stop_after
    )
    with SmallTmpfs() as disk:
        state = disk.path / "state"
        ledger = state / "ledger.sqlite"
        inventory = _inventory(
            lab,
            hosts,
            workdir,
            {**service_vars, "partner_credentials_file": str(credentials), "ledger_path": str(ledger)},
        )
        first, out, err, trial.faults = _first_run_struck(
            lab,
            ["run", str(LICENSE_ONLY), "-i", str(inventory)],
            state,
            stop_after,
            lambda running: disk.fill() if running else 0,
        )
        outputs = [out + err]
        (workdir / "first.out").write_text(out + err)
        if first.returncode == 0:
            trial.problems.append("the first run exited 0 although its state dir was full")
        errors = [line for line in err.splitlines() if line.startswith("ispagent: error")]
        print(
            f"  state dir full, first run: exit {first.returncode}, {len(ordered_so_far(service_vars, credentials))} "
            f"licenses in the account: {errors[-1][:200] if errors else '(no error line)'}"
        )
        if len(errors) > 1 or any(len(line) > 400 for line in errors):
            trial.problems.append(f"the full state dir is not reported in one line: {errors[:2]}")
        ordered = chaos._account(service_vars, credentials)
        disk.restore()
        _check_intents(ledger, hosts, ordered, trial)
        resumed = _finish_license_run(state, workdir, first.returncode, trial)
        if resumed is not None:
            outputs.append(resumed)
        outputs.append(
            _second_license_run(lab, hosts, inventory, state, workdir, service_vars, credentials, ledger, trial)
        )
        (workdir / "later.out").write_text("\n".join(outputs[1:]))
        trial.tracebacks = sum(1 for text in outputs if "Traceback" in text)
    trial.seconds = time.monotonic() - began
    return trial


class SmallTmpfs:
    """A 64 MB tmpfs of its own, to be filled up under a running agent."""

    def __enter__(self) -> SmallTmpfs:
        self.path = Path(tempfile.mkdtemp(prefix="ispagent-small-disk-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.path)], check=True)
        self.filler = self.path / "filler"
        return self

    def fill(self) -> int:
        """Write zeros until the disk is full (ENOSPC)."""
        with open(self.filler, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * (1 << 20))
                    out.flush()
            except OSError:
                pass
        return 1

    def restore(self) -> None:
        self.filler.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def ordered_so_far(service_vars: dict, credentials: Path) -> list:
    return chaos._account(service_vars, credentials)


def _check_intents(url: str | Path, hosts, ordered: list, trial: chaos.Trial) -> None:
    """Every license the account holds was ordered after its intent was in the ledger."""
    from agent.ledger import LicenseLedger

    by_ip = {host.address: host.name for host in hosts}
    with LicenseLedger(url) as ledger:
        without = [by_ip.get(lic.ip, lic.ip) for lic in ordered if ledger.order_intent(by_ip.get(lic.ip, "")) is None]
    if without:
        trial.problems.append(f"ordered without an intent in the ledger: {without}")


def _finish_license_run(state: Path, workdir: Path, returncode: int, trial: chaos.Trial) -> str | None:
    if returncode == 0:
        trial.problems.append("the first run exited 0 although its ledger stopped")
        return None
    resumed = chaos._cli(
        ["run", "--resume", chaos._run_id(state), "--report-json", str(workdir / "resumed.json")], state
    )
    if resumed.returncode not in (0, 4):
        trial.problems.append(f"resume exit {resumed.returncode}: {chaos._last_line(resumed)}")
    return resumed.stdout + resumed.stderr


def _second_license_run(lab, hosts, inventory, state, workdir, service_vars, credentials, url, trial) -> str:
    from collections import Counter

    from agent.ledger import LicenseLedger

    before = chaos._account(service_vars, credentials)
    second = chaos._cli(
        ["run", str(LICENSE_ONLY), "-i", str(inventory), "--report-json", str(workdir / "second.json")], state
    )
    if second.returncode != 0:
        trial.problems.append(f"second run exit {second.returncode}: {chaos._last_line(second)}")
    account = chaos._account(service_vars, credentials)
    if len(account) != len(before):
        trial.problems.append(f"second run ordered {len(account) - len(before)} license(s)")
    by_ip = Counter(lic.ip for lic in account)
    trial.duplicates = sum(count - 1 for count in by_ip.values() if count > 1)
    trial.unlicensed = sum(1 for host in hosts if by_ip[host.address] == 0)
    with LicenseLedger(url) as ledger:  # the report step bills each license's activation
        activations = Counter(e.license_id for e in ledger.billing_events() if e.kind == "activation")
    trial.lost_activations = sum(1 for lic in account if activations[lic.id] == 0)
    extra = {license_id: n for license_id, n in activations.items() if n > 1}
    if extra:
        trial.problems.append(f"activations billed twice: {extra}")
    return second.stdout + second.stderr


def _control_node_trial(
    lab: Lab, hosts, workdir: Path, scenario: str, stop_after: int
) -> tuple[chaos.Trial, dict, Path]:
    """A control-node trial's start: its row, the hosts reset, the lab's service vars and a fresh
    partner account's credentials file."""
    workdir.mkdir(parents=True, exist_ok=True)
    _reset(lab, hosts)
    return (
        chaos.Trial(scenario, f"after {stop_after} licenses", len(hosts)),
        inventory_vars(lab.dir, lab.bridge_address),
        chaos._fresh_account(lab, workdir),
    )


def _first_run_struck(
    lab: Lab, args: list[str], state: Path, licenses: int, strike: Callable[[bool], int]
) -> tuple[subprocess.Popen, str, str, int]:
    """The first run of a control-node trial, struck by `strike(still_running)` (it returns the
    faults it injected) once `licenses` license steps are done and the next host's order waits at
    the partner's gate, its intent already in the ledger; the run's process, output and faults."""
    run = _start(args, state)
    try:
        with chaos.orders_held_after(lab, licenses) as order_waits:
            while run.poll() is None and not (_licensed(state) >= licenses and order_waits()):
                time.sleep(0.05)
            faults = strike(run.poll() is None)
        out, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    return run, out, err, faults


def _licensed(state: Path) -> int:
    """License steps finished so far in the (only) run of `state`, read from its journal."""
    runs = list((state / "runs").glob("*/events.jsonl")) if (state / "runs").is_dir() else []
    if not runs:
        return 0
    count = 0
    for line in runs[0].read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # a line being written
            continue
        count += event.get("event") == "step_finished" and event.get("step") == "license"
    return count


class ThrowawayPostgres:
    """A private PostgreSQL cluster: initdb in a temp dir as the postgres user, on a port of its own,
    password logins on 127.0.0.1. Removed on exit."""

    def __init__(self) -> None:
        # Its own directory under /tmp: a run's work dir is usually root's and closed to postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="ispagent-pg-"))
        self.bin = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
        self.port = 20000 + secrets.randbelow(20000)
        self.password = secrets.token_hex(8)
        self.url = f"postgresql+psycopg://chaos:{self.password}@127.0.0.1:{self.port}/chaos"

    def __enter__(self) -> ThrowawayPostgres:
        shutil.chown(self.dir, "postgres", "postgres")
        secret = self.dir / "pw"
        secret.write_text(self.password + "\n")
        shutil.chown(secret, "postgres", "postgres")
        self._as_postgres(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ]
        )
        conf = self.dir / "data" / "postgresql.conf"
        conf.write_text(
            conf.read_text() + f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
        )
        self.start()
        psql = [str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-qAt", "-c"]
        self._as_postgres([*psql, f"CREATE ROLE chaos LOGIN PASSWORD '{self.password}'"])
        self._as_postgres([*psql, "CREATE DATABASE chaos OWNER chaos"])
        return self

    def __exit__(self, *exc) -> None:
        self._as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "stop", "-m", "immediate"], check=False
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        self._as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "start"]
        )

    def stop(self) -> None:
        """Stopped at once, as a crash would (no shutdown checkpoint, every connection cut)."""
        self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "stop", "-m", "immediate"])

    def _as_postgres(self, argv: list[str], check: bool = True) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, cwd="/")
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv[0]}: {(done.stderr or done.stdout).strip()[-300:]}")


def _inventory(lab: Lab, hosts, workdir: Path, vars: dict) -> Path:
    path = chaos._inventory(lab, hosts, workdir, vars)
    data = yaml.safe_load(path.read_text())
    data["ssh"]["command_timeout"] = COMMAND_TIMEOUT
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start(args: list[str], state: Path) -> subprocess.Popen:
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(state)}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _report_hosts(path: Path) -> dict[str, dict]:
    try:
        return {h["name"]: h for h in json.loads(path.read_text())["hosts"]}
    except (OSError, ValueError):
        return {}


def faulty_hosts(hosts, share: float) -> dict[str, Fault]:
    """`share` of the hosts, spread over the list, each with the next fault of SSH_FAULTS in turn."""
    count = max(len(SSH_FAULTS), round(len(hosts) * share))
    step = max(1, len(hosts) // count)
    chosen = hosts[::step][:count]
    return {host.name: SSH_FAULTS[i % len(SSH_FAULTS)] for i, host in enumerate(chosen)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50, help="lab hosts")
    parser.add_argument("--share", type=float, default=0.10, help="share of the hosts under an SSH fault")
    parser.add_argument("--skip-ssh", action="store_true", help="no SSH-fault trial")
    parser.add_argument("--skip-postgres", action="store_true", help="no PostgreSQL-stopped trial")
    parser.add_argument("--skip-state-dir", action="store_true", help="no state-dir-full trial")
    args = parser.parse_args()
    if args.hosts < len(SSH_FAULTS):
        print(f"--hosts must be at least {len(SSH_FAULTS)} (one host per kind of fault)", file=sys.stderr)
        return 2
    lab = Lab(Path(tempfile.mkdtemp(prefix="ispagent-chaos-faults-")))  # a lab of its own, beside any other
    trials: list[chaos.Trial] = []
    os.environ[chaos.EXTENSIONS_ENV] = chaos.LAB_EXTENSIONS  # the order gate and admin routes chaos drives
    try:
        lab.up(args.hosts)
        hosts = lab.hosts[: args.hosts]
        if not args.skip_ssh:
            faults = faulty_hosts(hosts, args.share)
            trial, first = ssh_fault_trial(
                lab,
                hosts,
                faults,
                lab.dir / "chaos" / "ssh-faults",
                f"SSH faults on {len(faults)} of {len(hosts)} hosts",
            )
            trials.append(trial)
            for name, fault in faults.items():
                entry = first.get(name) or {}
                dropped = f" ({entry['dropped']} packets dropped)" if entry.get("dropped") is not None else ""
                if entry.get("held") is not None:
                    dropped += f" (let go {entry['held']:.1f} s after the fault; command timeout {COMMAND_TIMEOUT} s)"
                print(
                    f"{name:<5} {str(fault):<16} first run: {entry.get('status', '?'):<12}"
                    f" {(entry.get('error') or '')[:90]}{dropped}"
                )
            print(f"SSH faults: {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}", flush=True)
        if not args.skip_postgres:
            trial = postgres_trial(lab, hosts, lab.dir / "chaos" / "postgres", max(1, len(hosts) // 10))
            trials.append(trial)
            print(f"PostgreSQL stopped: {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}", flush=True)
        if not args.skip_state_dir:
            trial = state_dir_full_trial(lab, hosts, lab.dir / "chaos" / "state-full", max(1, len(hosts) // 10))
            trials.append(trial)
            print(f"state dir full: {trial.seconds:5.1f} s {'; '.join(trial.problems) or 'ok'}", flush=True)
    finally:
        lab.down()
    print()
    print(chaos.table(trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
