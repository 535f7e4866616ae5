"""Benchmark and show (not a test): one rollout of playbooks/install.yaml over lab hosts by several control
nodes sharing a PostgreSQL ledger, with a node killed, a node cut from the database and a node joining late.

Each control node is an `ispagent run --rollout` process in a network namespace of its own (a site),
attached to the lab's bridge with an address of its own: its route to the lab hosts, and to
PostgreSQL at the bridge's address. The PostgreSQL that `.ci/setup` starts listens on localhost only,
so a forwarder in the bench process (tests/pgkit.py's CuttableProxy, with the server's keepalives on
its client side) listens on the bridge for it. Per scenario, on a fresh lab:

- `alone`: one node alone over the hosts (the wall time to beat);
- `show`: nodes a, b and c start together; a is SIGKILLed mid-rollout (while it holds hosts); b is cut
  from PostgreSQL for --cut seconds (nftables in its namespace drops its packets to and from the
  database); d joins late; then a second run of the same rollout and a new rollout over the same
  hosts, which must change nothing and order nothing;
- `faults`: the same with the partner emulator's faults (5xx, resets, answers lost after the work).

Checked: the rollout completes; every host licensed exactly once in the account and in the ledger (one
billed activation per license), no duplicate order, each panel's licid equal to its account license,
each host's installer run once and to completion (the installer emulator's invocation record), and
`rollout status --json` against account, ledger and hosts at three moments (mid-rollout, after the kill,
at the end). Prints hosts per node, wall times and every problem found.

    flock /tmp/ispagent-lab.lock .venv/bin/python bench/fleet_rollout.py [--hosts 60] [--forks 6] [--cut 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pgkit import CuttableProxy, pg_schema  # noqa: E402

from agent.lab import Lab  # noqa: E402
from agent.lab.mirror import write_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "playbooks" / "install.yaml"
MGRCTL = "/usr/local/mgr5/sbin/mgrctl"
EMULATOR_STATE = "/var/lib/ispmanager-emulator"
PARTNER_FAULTS = {"error_rate": 0.05, "reset_rate": 0.05, "drop_rate": 0.05}


@dataclass
class Site:
    """A control node's network namespace on the lab's bridge."""

    name: str
    netns: str
    veth: str
    address: str

    def up(self, lab: Lab) -> None:
        bridge, prefix = lab.network.bridge, lab.network.prefixlen
        for argv in (
            ["ip", "netns", "add", self.netns],
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns],
            ["ip", "link", "set", self.veth, "master", bridge, "up"],
            ["ip", "-n", self.netns, "addr", "add", f"{self.address}/{prefix}", "dev", "eth0"],
            ["ip", "-n", self.netns, "link", "set", "eth0", "up"],
            ["ip", "-n", self.netns, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    def cut_database(self, address: str, port: int) -> None:
        """Drop every packet to and from the database's address and port, inside the site: no reset, no FIN."""
        rules = (
            f"table inet fleetcut {{\n chain out {{ type filter hook output priority 0; ip daddr {address} "
            f"tcp dport {port} drop; }}\n chain in {{ type filter hook input priority 0; ip saddr {address} "
            f"tcp sport {port} drop; }}\n}}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.netns, "nft", "-f", "-"], input=rules, text=True, check=True)

    def restore_database(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet", "fleetcut"], check=True)

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)  # takes its veth pair along


@dataclass
class Node:
    site: Site
    process: subprocess.Popen
    state: Path
    log: Path
    started: float
    ended: float | None = None


@dataclass
class Scenario:
    label: str
    wall: float = 0.0
    problems: list[str] = field(default_factory=list)
    per_node: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    orders: int = 0
    injected: dict = field(default_factory=dict)


class Bench:
    def __init__(self, work: Path, options: argparse.Namespace) -> None:
        self.work, self.options = work, options
        self.lab = Lab(work / "lab-none")  # set per scenario by lab_up
        self.sites: dict[str, Site] = {}
        self.proxy: CuttableProxy | None = None
        self.started: list[subprocess.Popen] = []  # every node process, ended before its lab goes down
        self.inventory = work / "fleet-inventory.yaml"  # set per scenario by lab_up
        self.url = ""

    # -- setup ----------------------------------------------------------------------------------

    def lab_up(self, schema_url: str, label: str) -> float:
        began = time.perf_counter()
        # A lab of its own per scenario: the partner emulator's account starts empty, the hosts fresh.
        self.lab = Lab(self.work / f"lab-{label}")
        self.lab.up(self.options.hosts)
        write_config(
            self.lab.dir / "services" / "mirror", install_seconds=self.options.install_seconds, license_retry_delay=0.2
        )
        self.proxy = CuttableProxy(listen=self.lab.bridge_address)
        self.url = self.proxy.url(schema_url)
        data = yaml.safe_load(self.lab.inventory_path.read_text())
        data["defaults"]["vars"]["ledger_url"] = self.url
        # Beside the lab's: its relative paths (client key, known_hosts) start at the inventory's directory.
        self.inventory = self.lab.dir / "fleet-inventory.yaml"
        self.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        net = self.lab.network.network
        last_24 = int(net.broadcast_address) - 255  # the /21's last /24: no lab host of a few hundred there
        for index, name in enumerate("abcd", start=1):
            self.sites[name] = Site(
                name, f"ispfleet-{name}", f"ispfleet{name}", str(net.network_address.__class__(last_24 + 200 + index))
            )
            self.sites[name].up(self.lab)
        return time.perf_counter() - began

    def lab_down(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.started.clear()
        for site in self.sites.values():
            site.down()
        self.sites.clear()
        if self.proxy:
            self.proxy.cut()
            self.proxy = None
        self.lab.down()

    # -- nodes ----------------------------------------------------------------------------------

    def start_node(self, site: str, rollout: str, *extra: str) -> Node:
        state = self.work / f"state-{rollout}-{site}"
        log = self.work / f"node-{rollout}-{site}.log"
        argv = [
            "ip",
            "netns",
            "exec",
            self.sites[site].netns,
            sys.executable,
            "-m",
            "agent",
            "run",
            str(PLAYBOOK),
            "-i",
            str(self.inventory),
            "--rollout",
            rollout,
            "--lease",
            str(self.options.lease),
            "--forks",
            str(self.options.forks),
            "--ssh-config",
            "/dev/null",
            "-q",
            "--wait",
            *extra,
        ]
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv, env={**os.environ, "ISPAGENT_STATE_DIR": str(state)}, cwd=REPO, stdout=out, stderr=out
            )
        self.started.append(process)
        node = Node(self.sites[site], process, state, log, time.perf_counter())

        def stamp() -> None:  # the moment it ended, not when the bench next looked
            process.wait()
            node.ended = time.perf_counter()

        threading.Thread(target=stamp, daemon=True).start()
        return node

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            env={**os.environ, "ISPAGENT_STATE_DIR": str(self.work / "state-cli")},
        )

    def status(self, rollout: str) -> dict:
        done = self.cli("rollout", "status", rollout, "-i", str(self.inventory), "--json")
        if done.returncode != 0:
            raise RuntimeError(f"rollout status: {done.stderr.strip()}")
        return json.loads(done.stdout)

    # -- what is true now: account, ledger, hosts -----------------------------------------------

    def account(self) -> list:
        from agent.partner.client import PartnerClient
        from agent.partner.settings import settings_from_vars

        vars = yaml.safe_load(self.inventory.read_text())["defaults"]["vars"]
        with PartnerClient(settings_from_vars(vars)) as client:
            return [lic for lic in client.list() if lic.live]

    def ledger(self) -> tuple[dict[str, str], Counter]:
        from agent.ledger import LicenseLedger

        with LicenseLedger(self.url) as ledger:
            held = {host.name: lic.id for host in self.lab.hosts if (lic := ledger.license_of_host(host.name))}
            billed = Counter(e.license_id for e in ledger.billing_events() if e.kind == "activation")
        return held, billed

    def on_hosts(self) -> dict[str, tuple[str, int, int]]:
        """Per host: the panel's licid, install.sh invocations, installs that reached their end."""
        script = (
            f'echo "licid=$({MGRCTL} -m ispmgr license.info 2>/dev/null | sed -n "s/^licid=//p")"; '
            f'echo "ran=$(cat {EMULATOR_STATE}/invocations 2>/dev/null | wc -l)"; '
            f'echo "done=$(grep -cx done {EMULATOR_STATE}/stages 2>/dev/null)"'
        )

        def one(host):
            output = self.lab.exec(host.name, ["sh", "-c", script]).stdout
            found = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
            number = lambda key: int(found.get(key, "").strip() or 0)  # noqa: E731
            return host.name, (found.get("licid", "").strip(), number("ran"), number("done"))

        with ThreadPoolExecutor(16) as pool:
            return dict(pool.map(one, self.lab.hosts))

    def check(self, moment: str, status: dict, scenario: Scenario, final: bool = False) -> None:
        """`rollout status --json` against the account, the ledger and the hosts."""
        # The ledger before the account: a license billed by then is in the account when it is listed
        # (read the other way round, an order landing between the two reads looks billed but unheld).
        (held, billed), account, hosts = self.ledger(), self.account(), self.on_hosts()
        later: dict | None = None

        def still_pending(name: str) -> bool:
            # The facts were read after `status`: a host pending then may have been claimed and licensed
            # since. Pending in a status read after the facts too, it must hold no license.
            nonlocal later
            later = later or self.status(status["rollout"])
            return any(h["host"] == name and h["state"] == "pending" for h in later["hosts"])

        by_ip: dict[str, list[str]] = {}
        for lic in account:
            by_ip.setdefault(lic.ip, []).append(lic.id)
        problems = []
        for host in self.lab.hosts:
            ids = by_ip.get(host.address, [])
            if len(ids) > 1:
                problems.append(f"{host.name}: {len(ids)} licenses in the account {ids}")
        for entry in status["hosts"]:
            name = entry["host"]
            address = next(h.address for h in self.lab.hosts if h.name == name)
            ids, licid, invocations, completed = by_ip.get(address, []), *hosts[name]
            if entry["state"] in ("ok", "changed"):
                if len(ids) != 1 or held.get(name) != ids[0] or licid != ids[0] or billed[ids[0]] != 1:
                    problems.append(
                        f"{name} {entry['state']}: account {ids}, ledger {held.get(name)}, "
                        f"panel {licid or '-'}, billed {billed[ids[0]] if ids else 0}"
                    )
                if invocations != 1 or completed != 1:
                    problems.append(f"{name} {entry['state']}: install.sh ran {invocations}x, completed {completed}x")
            elif entry["state"] == "pending" and (ids or licid) and still_pending(name):
                problems.append(f"{name} pending yet licensed: account {ids}, panel {licid or '-'}")
            elif entry["state"] in ("failed", "unreachable"):
                problems.append(f"{name} {entry['state']}: {entry.get('failed_step')}: {entry.get('error')}")
        if final and not status["complete"]:
            problems.append(f"rollout not complete: {status['counts']}")
        in_account = {lic.id for lic in account}
        extra = {lic_id: n for lic_id, n in billed.items() if n != 1 or lic_id not in in_account}
        if extra:
            problems.append(f"billed activations not one per account license: {extra}")
        counts = ", ".join(f"{n} {state}" for state, n in status["counts"].items() if n)
        alive = sum(1 for n in status["nodes"] if n["alive"])
        print(
            f"  [{moment}] status: {counts}; nodes alive {alive}/{len(status['nodes'])}; account {len(account)} "
            f"licenses, ledger {len(held)}, panels licensed {sum(1 for v in hosts.values() if v[0])}: "
            f"{'consistent' if not problems else f'{len(problems)} problem(s)'}",
            flush=True,
        )
        for problem in problems:
            print(f"    ! {problem}", flush=True)
        scenario.problems += [f"{moment}: {p}" for p in problems]

    # -- scenarios ------------------------------------------------------------------------------

    def wait_done(self, nodes: list[Node], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        for node in nodes:
            try:
                node.process.wait(max(1.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            while node.ended is None:  # its stamping thread is about to set it
                time.sleep(0.01)

    def alone(self) -> Scenario:
        scenario = Scenario("alone")
        began = time.perf_counter()
        node = self.start_node("a", "alone")
        self.wait_done([node], 1800)
        scenario.wall = time.perf_counter() - began
        scenario.orders = self._admin("calls")["calls"].get("soft.order.param", 0)
        status = self.status("alone")
        scenario.exits["a"] = node.process.returncode
        scenario.per_node = {n["node"]: sum(n["hosts"].values()) for n in status["nodes"]}
        self.check("end", status, scenario, final=True)
        return scenario

    def show(self, label: str, faults: dict | None) -> Scenario:
        scenario, rollout = Scenario(label), label
        if faults:
            self._admin("faults", faults)
        self._admin("calls?reset=1")
        began = time.perf_counter()
        nodes = {name: self.start_node(name, rollout) for name in "abc"}
        pids = {node.process.pid: name for name, node in nodes.items()}
        # Mid-rollout: a fifth of the hosts finished, node a holding some.
        status = self._wait_for(
            rollout,
            lambda s: (
                s["counts"]["ok"] + s["counts"]["changed"] >= self.options.hosts // 5
                and self._holds(s, nodes["a"].process.pid)
            ),
            900,
        )
        print(f"  mid-rollout at {time.perf_counter() - began:.1f}s", flush=True)
        self.check("mid-rollout", status, scenario)
        nodes["a"].process.send_signal(signal.SIGKILL)
        nodes["a"].process.wait()
        nodes["a"].ended = time.perf_counter()
        killed_at = nodes["a"].ended - began
        status = self.status(rollout)
        dead = [
            h["host"]
            for h in status["hosts"]
            if h["state"] == "claimed" and h["node"] == self._node_id(status, nodes["a"].process.pid)
        ]
        print(f"  node a SIGKILLed at {killed_at:.1f}s holding {len(dead)} host(s): {', '.join(dead)}", flush=True)
        self.check("after the kill", status, scenario)
        self.sites["b"].cut_database(self.lab.bridge_address, self.proxy.port)
        cut_at = time.perf_counter()
        print(f"  node b cut from PostgreSQL at {cut_at - began:.1f}s for {self.options.cut:g}s", flush=True)
        time.sleep(5)
        nodes["d"] = self.start_node("d", rollout)
        pids[nodes["d"].process.pid] = "d"
        print(f"  node d joined at {time.perf_counter() - began:.1f}s", flush=True)
        time.sleep(max(0.0, self.options.cut - (time.perf_counter() - cut_at)))
        self.sites["b"].restore_database()
        b_code = nodes["b"].process.poll()
        print(
            f"  node b's route to PostgreSQL back at {time.perf_counter() - began:.1f}s "
            f"(b {'still running' if b_code is None else f'exited {b_code}'})",
            flush=True,
        )
        self.wait_done([n for k, n in nodes.items() if k != "a"], 1800)
        # The rollout is complete when the last node that waits for it ends: b, cut off, ends on its own.
        scenario.wall = max(n.ended for k, n in nodes.items() if k in "cd") - began
        if faults:
            scenario.injected = self._admin("calls").get("injected", {})
            self._admin("faults", {})
        scenario.orders = self._admin("calls")["calls"].get("soft.order.param", 0)
        status = self.status(rollout)
        scenario.exits = {name: node.process.returncode for name, node in nodes.items()}
        scenario.per_node = {pids.get(n["pid"], n["node"]): sum(n["hosts"].values()) for n in status["nodes"]}
        claimed_twice = sorted(h["host"] for h in status["hosts"] if h["claims"] > 1)
        print(
            f"  rollout {'complete' if status['complete'] else 'NOT complete'} at {scenario.wall:.1f}s, exit "
            f"{status['exit_code']}; node exits {scenario.exits}; hosts per node {scenario.per_node}; claimed again "
            f"{len(claimed_twice)}: {', '.join(claimed_twice)}",
            flush=True,
        )
        self.check("end", status, scenario, final=True)
        self._again(rollout, scenario)
        return scenario

    def _again(self, rollout: str, scenario: Scenario) -> None:
        """The same rollout joined again, then a new rollout over the same hosts: nothing changes, nothing ordered."""
        orders = self._admin("calls")["calls"].get("soft.order.param", 0)
        rejoin = self.start_node("c", rollout)
        self.wait_done([rejoin], 300)
        report = self.work / f"again-{rollout}.json"
        fresh = [
            self.start_node(site, f"{rollout}-again", "--report-json", str(report.with_suffix(f".{site}.json")))
            for site in "cd"
        ]
        report = report.with_suffix(".c.json")  # either node's: each is the whole rollout's
        self.wait_done(fresh, 1200)
        hosts = json.loads(report.read_text())["hosts"] if report.exists() else []
        changed = [h["name"] for h in hosts if h["status"] != "ok"]
        steps = Counter(s["step"] for h in hosts for s in h["steps"] if s["changed"] or s["status"] == "failed")
        ordered = self._admin("calls")["calls"].get("soft.order.param", 0) - orders
        print(
            f"  again: the same rollout joined (exit {rejoin.process.returncode}); a new rollout by 2 nodes (exits "
            f"{[n.process.returncode for n in fresh]}): {len(hosts)} hosts in its report, {len(changed)} not ok "
            f"{changed[:5]} (steps that changed or failed: {dict(steps)}), {ordered} order(s)",
            flush=True,
        )
        if changed and set(steps) == {"report"}:
            # Activations the account had not confirmed under faults are retried by the next run's report
            # step (the outbox, by design): a third run must then change nothing at all.
            third = self.work / f"again2-{rollout}.json"
            node = self.start_node("c", f"{rollout}-again2", "--report-json", str(third))
            self.wait_done([node], 1200)
            hosts = json.loads(third.read_text())["hosts"] if third.exists() else []
            changed = [h["name"] for h in hosts if h["status"] != "ok"]
            ordered = self._admin("calls")["calls"].get("soft.order.param", 0) - orders
            print(
                f"  a third run (exit {node.process.returncode}), after the outbox's retries: {len(hosts)} hosts, "
                f"{len(changed)} not ok {changed[:5]}, {ordered} order(s) since the first",
                flush=True,
            )
        if (
            rejoin.process.returncode != 0
            or any(n.process.returncode != 0 for n in fresh)
            or changed
            or ordered
            or len(hosts) != self.options.hosts
        ):
            scenario.problems.append(
                f"second run: rejoin exit {rejoin.process.returncode}, new rollout exits "
                f"{[n.process.returncode for n in fresh]}, {len(hosts)} hosts, not ok {changed}, "
                f"{ordered} orders"
            )

    def _wait_for(self, rollout: str, predicate, timeout: float) -> dict:
        deadline = time.perf_counter() + timeout
        while True:
            try:
                status = self.status(rollout)
            except RuntimeError:
                status = None  # not started yet
            if status is not None:
                if predicate(status):
                    return status
                if status["complete"]:
                    raise RuntimeError(
                        f"rollout {rollout} completed before the moment waited for: "
                        "give it more hosts (or fewer --forks)"
                    )
            if time.perf_counter() > deadline:
                raise RuntimeError(f"rollout {rollout}: the moment waited for never came")
            time.sleep(0.5)

    @staticmethod
    def _node_id(status: dict, pid: int) -> str | None:
        return next((n["node"] for n in status["nodes"] if n["pid"] == pid), None)

    def _holds(self, status: dict, pid: int) -> bool:
        node = self._node_id(status, pid)
        return any(h["state"] == "claimed" and h["node"] == node for h in status["hosts"])

    def _admin(self, op: str, data: dict | None = None) -> dict:
        import urllib.request

        token = (self.lab.dir / "services" / "partner" / "admin-token").read_text().strip()
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(
            f"http://{self.lab.bridge_address}:8443/admin/{op}",
            data=body,
            headers={"X-Admin-Token": token, "Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(request, timeout=10).read())


def one_lab(bench: Bench, label: str, run) -> Scenario:
    with pg_schema() as schema_url:
        try:
            took = bench.lab_up(schema_url, label)
            print(f"lab up: {bench.options.hosts} hosts and 4 sites in {took:.1f}s", flush=True)
            return run()
        except Exception as error:  # one scenario's failure is reported; the next still runs
            print(f"  {label} FAILED: {type(error).__name__}: {error}", flush=True)
            return Scenario(label, problems=[f"{type(error).__name__}: {error}"])
        finally:
            began = time.perf_counter()
            bench.lab_down()
            print(f"lab down: {time.perf_counter() - began:.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--forks", type=int, default=6, help="per node")
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--cut", type=float, default=30.0, help="seconds node b is cut from PostgreSQL")
    parser.add_argument("--install-seconds", type=float, default=2.0, help="the emulated install.sh's install time")
    parser.add_argument("--only", choices=("alone", "show", "faults"), action="append")
    options = parser.parse_args()
    from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS

    os.environ[EXTENSIONS_ENV] = LAB_EXTENSIONS  # the lab's emulator counts calls and takes faults (/admin)
    work = Path(tempfile.mkdtemp(prefix="ispagent-fleet-rollout-"))
    bench = Bench(work, options)
    wanted = options.only or ["alone", "show", "faults"]
    results: list[Scenario] = []
    for label in wanted:
        print(
            f"== {label}: {options.hosts} hosts, --forks {options.forks} per node, lease {options.lease:g}s", flush=True
        )
        if label == "alone":
            results.append(one_lab(bench, label, bench.alone))
        else:
            faults = PARTNER_FAULTS if label == "faults" else None
            results.append(one_lab(bench, label, lambda: bench.show(label, faults)))
        print(f"  {label}: wall {results[-1].wall:.1f}s, problems {len(results[-1].problems)}", flush=True)
    print("\nscenario  wall (s)  orders  hosts per node                          partner faults injected      problems")
    for s in results:
        print(
            f"{s.label:<8}  {s.wall:8.1f}  {s.orders:6}  {json.dumps(s.per_node):<38}  {json.dumps(s.injected):<27}  "
            f"{len(s.problems)}"
        )
    alone = next((s for s in results if s.label == "alone"), None)
    for s in results:
        if alone and s is not alone and alone.wall:
            print(f"{s.label}: {s.wall:.1f}s against one node alone {alone.wall:.1f}s = {s.wall / alone.wall:.2f}x")
    print(f"node logs: {work}")
    sys.exit(1 if any(s.problems for s in results) else 0)


if __name__ == "__main__":
    main()
