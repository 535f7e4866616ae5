"""Fuzz harness: bad input at volume through the real command line (the mutations: harness/mutations.py).

Mutations of the shipped examples, as a careless user, an editor or a bad merge makes them (types,
control characters, bytes that are not UTF-8, a byte order mark, aliases and merge keys, huge
values, duplicate keys, deep nesting, digits of other scripts), fed to the commands that read them:

    inventory   inventory check (and, one case in --run-every, run --dry-run)
    playbook    run --dry-run with a valid inventory whose one host is a closed port on 127.0.0.1
    program     turnover --program and forecast --program on a fresh ledger
    billing     ledger import into a fresh SQLite ledger (odd cases: one already holding the example)
    vagrant     inventory from-vagrant -o FILE, then inventory check of what it wrote

Every command must exit 0 or 2 (`run` may exit 1 with the host unreachable: what a user with that
inventory gets), an error must be one line, never a traceback; a refused import must leave the
ledger's rows as they were, a refused from-vagrant must write no file, and what from-vagrant writes
must pass `inventory check`. Cases run in-process (click's CliRunner) in a worker process that a
watchdog kills when one case takes longer than --case-timeout (a hang); one case in
--subprocess-every also runs as a real `ispagent` process (exit code, stderr, no "Traceback").

In-process runs set the SSH connect retry delay to 0 (a closed port is refused at once; the real
0.5 s, 1 s backoff would only add waiting); the subprocess sample keeps the real delays.

    PYTHONPATH=tests .venv/bin/python -m harness.fuzz [--cases 2000] [--seed 12] [--kinds inventory,billing]
    PYTHONPATH=tests .venv/bin/python -m harness.fuzz --show billing 17   # case 17's input (as Python bytes)
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from harness.mutations import MAX_CASE_BYTES, OFFLINE_INVENTORY, REPO, VAGRANT_KEYS, case_input, originals  # noqa: F401

HARNESS_ENV = {**os.environ, "PYTHONPATH": str(REPO / "tests")}  # workers find `harness` as this process did

KINDS = ("inventory", "playbook", "program", "billing", "vagrant")
TODAY = "2026-11-26"
# Secrets the seeds hold: the panel_users password of inventory.example.yaml and the offline
# inventory's activation key. Neither may appear in anything a command prints.
SECRET_TEXTS = ("change me: any text on one line", "ISPFUZZ-7f3a-SECRET-KEY")
LONG_ERROR = 600  # characters: an error line longer than this echoes a value uncut

# ------------------------------------------------------------------------------- running cases


@dataclass
class Command:
    args: list[str]
    exit_code: int
    problems: list[str] = field(default_factory=list)
    error: str = ""  # the first stderr line of a failing command


@dataclass
class CaseResult:
    kind: str
    index: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    commands: list[Command] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [problem for command in self.commands for problem in command.problems]


class Workspace:
    """A directory holding what cases need besides their input: playbooks and templates to load beside
    a mutated playbook, the offline inventory, an empty migrated ledger to copy, a state dir."""

    def __init__(self, root: Path) -> None:
        from agent.ledger import LicenseLedger

        self.root = root
        shutil.copytree(REPO / "playbooks", root / "playbooks")
        shutil.copytree(REPO / "templates", root / "templates")
        (root / "known_hosts").write_text("")
        _write_credentials(root)
        self.inventory = root / "offline.yaml"
        self.inventory.write_text(OFFLINE_INVENTORY.replace("partner.cred", str(root / "partner.cred")))
        self.fresh_ledger = root / "fresh.db"
        with LicenseLedger(str(self.fresh_ledger)):
            pass
        self.fresh_rows = ledger_rows(self.fresh_ledger)
        # The shipped example already imported: a mutated example then also conflicts with the ledger.
        self.used_ledger = root / "used.db"
        shutil.copy(self.fresh_ledger, self.used_ledger)
        with LicenseLedger(str(self.used_ledger)) as ledger:
            from agent.economics.billing_csv import import_billing_csv

            import_billing_csv(ledger, REPO / "billing.example.csv", date.fromisoformat(TODAY))
        self.used_rows = ledger_rows(self.used_ledger)
        self.case_dir = root / "case"
        for machine in ("debian12", "ubuntu2404", "alma9"):
            key = VAGRANT_KEYS / machine / "virtualbox" / "private_key"
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_text("not a key: only its existence is checked\n")

    def new_case(self) -> Path:
        shutil.rmtree(self.case_dir, ignore_errors=True)
        self.case_dir.mkdir()
        _write_credentials(self.case_dir)  # for the offline inventory's mutations, read from there
        return self.case_dir


def _write_credentials(directory: Path) -> None:
    path = directory / "partner.cred"
    path.write_text("fuzz:not-a-real-password\n")
    path.chmod(0o600)


def ledger_rows(path: Path) -> list[str]:
    """Every row of every table, as SQL: what a refused import must leave as it was."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return list(connection.iterdump())


def invoke(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    from click.testing import CliRunner

    from agent.cli.main import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    exception = None if result.exception is None or isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stdout, result.stderr, exception


def judge(
    args: list[str],
    exit_code: int,
    stdout: str,
    stderr: str,
    exception: BaseException | None,
    unreachable_ok: bool = False,
) -> Command:
    """The command's outcome against the rules: exit 0 or 2, an error is one short line, no traceback."""
    command = Command(args, exit_code)
    text = stdout + stderr
    if exception is not None or "Traceback" in text:
        name = type(exception).__name__ if exception is not None else "Traceback"
        command.problems.append(f"traceback:{name}: {str(exception)[:200] if exception else ''}")
    unreachable = unreachable_ok and exit_code == 1 and "unreachable" in text
    if exit_code not in (0, 2) and not unreachable and exception is None:
        command.problems.append(f"exit:{exit_code}")
    if exit_code == 2:
        lines = stderr.strip("\n").splitlines()
        command.error = lines[0] if lines else ""
        if len(lines) != 1:
            command.problems.append(f"multi-line error ({len(lines)} lines): {' | '.join(lines)[:400]!r}")
        elif len(lines[0]) > LONG_ERROR:
            command.problems.append(f"error of {len(lines[0])} characters")
    if any(secret in text for secret in SECRET_TEXTS):
        command.problems.append("secret printed")
    return command


def run_case(kind: str, data: bytes, workspace: Workspace, index: int = 0, *, with_run: bool = False) -> CaseResult:
    """Feed one input to its kind's commands in-process and judge every outcome."""
    from agent.secrets import forget_secrets

    # Each case starts as a new process would: a secret one case registered (a mutated file can put
    # '1' under activation_key) would otherwise mask text in every case after it, and in other tests.
    forget_secrets()
    case = workspace.new_case()
    result = CaseResult(kind, index)
    started, cpu_started = time.perf_counter(), time.process_time()
    if kind == "inventory":
        path = case / "inventory.yaml"
        path.write_bytes(data)
        (case / "known_hosts").write_text("")
        result.commands.append(_in_process(["inventory", "check", "-i", str(path), "--ssh-config", "/dev/null"]))
        if with_run and b"198.18." not in data:  # never a connection to a lab host of another run
            result.commands.append(_in_process(_dry_run(workspace.root / "playbooks" / "smoke.yaml", path, case), True))
    elif kind == "playbook":
        path = workspace.root / "playbooks" / "fuzzed.yaml"  # beside files/ and ../templates/, as shipped
        path.write_bytes(data)
        result.commands.append(_in_process(_dry_run(path, workspace.inventory, case), True))
    elif kind == "program":
        path = case / "program.yaml"
        path.write_bytes(data)
        shutil.copy(workspace.fresh_ledger, case / "ledger.db")
        for command in (["turnover"], ["forecast", "--months", "3"]):
            args = [*command, "--program", str(path), "--ledger", str(case / "ledger.db"), "--today", TODAY]
            result.commands.append(_in_process(args))
    elif kind == "billing":
        path, ledger = case / "billing.csv", case / "ledger.db"
        path.write_bytes(data)
        used = index % 2 == 1  # odd cases: into a ledger that already holds the example
        shutil.copy(workspace.used_ledger if used else workspace.fresh_ledger, ledger)
        command = _in_process(["ledger", "import", str(path), "--ledger", str(ledger), "--today", TODAY])
        if command.exit_code != 0 and ledger_rows(ledger) != (workspace.used_rows if used else workspace.fresh_rows):
            command.problems.append("partial write: a refused import changed the ledger")
        result.commands.append(command)
    else:
        path, output = case / "ssh-config.txt", case / "vagrant.yaml"
        path.write_bytes(data)
        command = _in_process(["inventory", "from-vagrant", "-i", str(path), "-o", str(output)])
        result.commands.append(command)
        if command.exit_code != 0 and output.exists():
            command.problems.append("partial write: a refused from-vagrant wrote the inventory")
        if command.exit_code == 0:
            check = _in_process(["inventory", "check", "-i", str(output), "--ssh-config", "/dev/null"])
            if check.exit_code != 0:
                check.problems.append(f"written inventory refused: {check.error[:200]}")
            result.commands.append(check)
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    forget_secrets()
    return result


def _dry_run(playbook: Path, inventory: Path, case: Path) -> list[str]:
    return [
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--dry-run",
        "--ssh-config",
        "/dev/null",
        "--state-dir",
        str(case / "state"),
        "-q",
    ]


def _in_process(args: list[str], unreachable_ok: bool = False) -> Command:
    return judge(args, *invoke(args), unreachable_ok=unreachable_ok)


def in_subprocess(kind: str, data: bytes, workspace: Workspace, timeout: float) -> Command:
    """The case's first command as a real process: a user's exit code, stderr and (no) traceback."""
    case = workspace.new_case()
    stdin = None
    if kind == "inventory":
        (case / "inventory.yaml").write_bytes(data)
        args = ["inventory", "check", "-i", str(case / "inventory.yaml"), "--ssh-config", "/dev/null"]
    elif kind == "playbook":
        path = workspace.root / "playbooks" / "fuzzed.yaml"
        path.write_bytes(data)
        args = _dry_run(path, workspace.inventory, case)
    elif kind == "program":
        (case / "program.yaml").write_bytes(data)
        shutil.copy(workspace.fresh_ledger, case / "ledger.db")
        args = [
            "turnover",
            "--program",
            str(case / "program.yaml"),
            "--ledger",
            str(case / "ledger.db"),
            "--today",
            TODAY,
        ]
    elif kind == "billing":
        (case / "billing.csv").write_bytes(data)
        shutil.copy(workspace.fresh_ledger, case / "ledger.db")
        args = ["ledger", "import", str(case / "billing.csv"), "--ledger", str(case / "ledger.db"), "--today", TODAY]
    else:
        args, stdin = ["inventory", "from-vagrant"], data  # as a user pipes it: vagrant ssh-config | ispagent ...
    executable = Path(sys.executable).parent / "ispagent"
    argv = [str(executable)] if executable.exists() else [sys.executable, "-m", "agent"]
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(case / "state"), "HOME": str(case)}
    try:
        done = subprocess.run(argv + args, input=stdin, capture_output=True, timeout=timeout, env=env, cwd=case)
    except subprocess.TimeoutExpired:
        return Command(["subprocess", *args], -1, [f"hang: over {timeout:g} s as a process"])
    stdout, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    if kind == "playbook":  # the run id goes to stderr first: only the error line is judged
        stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith(("run ", "to finish")))
    return judge(["subprocess", *args], done.returncode, stdout, stderr, None, unreachable_ok=kind == "playbook")


# ------------------------------------------------------------------------ worker and watchdog


def worker(kind: str, seed: int, first: int, last: int, run_every: int, subprocess_every: int, timeout: float) -> None:
    """Run cases first..last-1 of `kind`, printing one JSON line before and after each."""
    import agent.transport.ssh as ssh

    ssh.RETRY_BASE_DELAY = 0  # see the module doc: in-process only
    for name in ("inventory", "run", "turnover", "forecast", "ledger"):  # import every command before timing
        invoke([name, "--help"])
    with tempfile.TemporaryDirectory(prefix="ispagent-fuzz-") as directory:
        workspace = Workspace(Path(directory))
        for index in range(first, last):
            print(json.dumps({"start": index}), flush=True)
            data = case_input(kind, seed, index)
            result = run_case(kind, data, workspace, index, with_run=index % run_every == 0)
            if index % subprocess_every == 0:
                started = time.perf_counter()
                result.commands.append(in_subprocess(kind, data, workspace, timeout))
                result.commands[-1].args.append(f"({time.perf_counter() - started:.2f} s)")
            print(json.dumps(asdict(result)), flush=True)


@dataclass
class KindTotals:
    kind: str
    cases: int = 0
    commands: int = 0
    subprocesses: int = 0
    exits: dict = field(default_factory=dict)
    tracebacks: int = 0
    multi_line: int = 0
    long_errors: int = 0
    partial_writes: int = 0
    refused_output: int = 0
    secrets: int = 0
    other_exits: int = 0
    hangs: int = 0
    stalls: int = 0
    slowest: tuple[float, int] = (0.0, -1)
    most_cpu: tuple[float, int] = (0.0, -1)
    wall: float = 0.0
    failures: list = field(default_factory=list)

    def add(self, result: dict) -> None:
        self.cases += 1
        self.slowest = max(self.slowest, (result["seconds"], result["index"]))
        self.most_cpu = max(self.most_cpu, (result["cpu_seconds"], result["index"]))
        for command in result["commands"]:
            self.commands += 1
            self.subprocesses += command["args"][0] == "subprocess"
            self.exits[command["exit_code"]] = self.exits.get(command["exit_code"], 0) + 1
            for problem in command["problems"]:
                self.tracebacks += problem.startswith("traceback")
                self.multi_line += problem.startswith("multi-line")
                self.long_errors += problem.startswith("error of")
                self.partial_writes += problem.startswith("partial write")
                self.refused_output += problem.startswith("written inventory refused")
                self.secrets += problem.startswith("secret")
                self.other_exits += problem.startswith("exit:")
                self.hangs += problem.startswith("hang")
        if any(command["problems"] for command in result["commands"]):
            self.failures.append(result)


def run_kind(
    totals: KindTotals, args: argparse.Namespace, module: str = "harness.fuzz", extra: list[str] | tuple[str, ...] = ()
) -> KindTotals:
    """Run a kind's cases in a worker process. A case that outlives --case-timeout is run once more
    in a new worker (a machine this busy can stall a process that long); when it outlives it again
    it is a hang, and the worker is restarted after it.

    `module`: whose `--worker` runs the cases (harness.inputs runs more kinds under this watchdog)."""
    kind = totals.kind
    started = time.perf_counter()
    first, retried = 0, set()
    while first < args.cases:
        command = [
            sys.executable,
            "-m",
            module,
            *extra,
            "--worker",
            kind,
            "--seed",
            str(args.seed),
            "--first",
            str(first),
            "--last",
            str(args.cases),
            "--run-every",
            str(args.run_every),
            "--subprocess-every",
            str(args.subprocess_every),
            "--case-timeout",
            str(args.case_timeout),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO, env=HARNESS_ENV)
        current, limit = None, args.case_timeout * 6  # the worker's own start-up gets longer
        for message in _messages(process, lambda: limit):
            if message is None:  # nothing for `limit` seconds: the current case hangs
                process.kill()
                process.wait()
                if current is None:
                    raise SystemExit(f"fuzz worker for {kind} did not start within {limit:g} s")
                if current not in retried:
                    totals.stalls += 1
                    retried.add(current)
                    first = current
                    break
                totals.add(
                    {
                        "kind": kind,
                        "index": current,
                        "seconds": args.case_timeout,
                        "cpu_seconds": 0.0,
                        "commands": [
                            {"args": ["case"], "exit_code": -9, "problems": [f"hang: over {args.case_timeout:g} s"]}
                        ],
                    }
                )
                first = current + 1
                break
            if "start" in message:
                current, limit = message["start"], args.case_timeout
                continue
            totals.add(message)
            totals.wall = time.perf_counter() - started
        else:
            process.wait()
            if process.returncode != 0:
                raise SystemExit(f"fuzz worker for {kind} died with exit {process.returncode} at case {current}")
            first = args.cases
        process.stdout.close()
    totals.wall = time.perf_counter() - started
    return totals


def _messages(process: subprocess.Popen, limit):
    """The worker's JSON lines as they come, None when none came for `limit()` seconds. Read from the
    descriptor itself: a buffered reader would hold a line that select() then never reports."""
    pending = b""
    descriptor = process.stdout.fileno()
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield json.loads(line)
        ready, _, _ = select.select([descriptor], [], [], limit())
        if not ready:
            yield None
            return
        chunk = os.read(descriptor, 1 << 16)
        if not chunk:
            return
        pending += chunk


def print_table(all_totals: list[KindTotals], args: argparse.Namespace) -> None:
    header = (
        "kind",
        "cases",
        "cmds",
        "procs",
        "exit 0",
        "exit 1*",
        "exit 2",
        "other",
        "tracebk",
        "multi-ln",
        "long err",
        "partial",
        "refused",
        "secret",
        "hangs",
        "stalls",
        "slowest (wall)",
        "most CPU",
        "wall",
    )
    rows = [header]
    for t in all_totals:
        rows.append(
            (
                t.kind,
                str(t.cases),
                str(t.commands),
                str(t.subprocesses),
                str(t.exits.get(0, 0)),
                str(t.exits.get(1, 0)),
                str(t.exits.get(2, 0)),
                str(t.other_exits),
                str(t.tracebacks),
                str(t.multi_line),
                str(t.long_errors),
                str(t.partial_writes),
                str(t.refused_output),
                str(t.secrets),
                str(t.hangs),
                str(t.stalls),
                f"{t.slowest[0]:.2f} s (#{t.slowest[1]})",
                f"{t.most_cpu[0]:.2f} s (#{t.most_cpu[1]})",
                f"{t.wall:.0f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
        )
    print(
        f"seed {args.seed}; exit 1*: run --dry-run with the host unreachable (127.0.0.1:1), what a user gets; "
        f"other: any other exit code; refused: from-vagrant wrote an inventory that inventory check refuses; "
        f"long err: an error line over {LONG_ERROR} characters; stalls: a case past --case-timeout that "
        f"finished when run again (a hang is one that did not); load: {os.getloadavg()[0]:.2f} "
        f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )


def save_failures(all_totals: list[KindTotals], directory: Path, seed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for totals in all_totals:
        for failure in totals.failures:
            index = failure["index"]
            stem = directory / f"{totals.kind}-{index}"
            stem.with_suffix(".input").write_bytes(case_input(totals.kind, seed, index))
            stem.with_suffix(".json").write_text(json.dumps(failure, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000, help="cases per input kind")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--case-timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--run-every", type=int, default=20, help="inventory cases also given to run --dry-run")
    parser.add_argument("--subprocess-every", type=int, default=100, help="cases also run as a real process")
    parser.add_argument("--progress", type=float, default=0, help="print the table so far every this many seconds")
    parser.add_argument("--jobs", type=int, default=1, help="kinds run at once, each in its own worker")
    parser.add_argument("--failures", type=Path, help="write each failing case's input and outcome here")
    parser.add_argument("--show", nargs=2, metavar=("KIND", "INDEX"), help="print one case's input and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.show:
        print(repr(case_input(args.show[0], args.seed, int(args.show[1]))))
        return
    if args.worker:
        worker(args.worker, args.seed, args.first, args.last, args.run_every, args.subprocess_every, args.case_timeout)
        return
    kinds = [kind.strip() for kind in args.kinds.split(",")]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    all_totals = [KindTotals(kind) for kind in kinds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each kind has its own worker process
        running = [pool.submit(run_kind, totals, args) for totals in all_totals]
        while not all(future.done() for future in running):
            time.sleep(1)
            if args.progress and time.monotonic() % args.progress < 1:
                print_table(all_totals, args)  # so far: a run stopped early still leaves its figures
        for future in running:
            future.result()
    for totals in all_totals:
        kind = totals.kind
        for failure in totals.failures[:8]:
            print(
                f"{kind} #{failure['index']}: "
                + "; ".join(
                    f"{' '.join(c['args'][:2])} -> {c['exit_code']}: {', '.join(c['problems'])} {c.get('error', '')[:160]!r}"
                    for c in failure["commands"]
                    if c["problems"]
                ),
                flush=True,
            )
    print_table(all_totals, args)
    if args.failures:
        save_failures(all_totals, args.failures, args.seed)


if __name__ == "__main__":
    main()
