"""The hostile-input table (issue 20): every kind of user input, damaged by the one mutator
(harness/mutations.py), through the commands that read it, as seeded cases and as hypothesis examples.

Per kind: cases tried, tracebacks, hangs, and files touched outside where they belong; also exit
codes, multi-line errors, secrets printed and partial writes (the judge of harness/fuzz.py).

    inventory, playbook, program, billing, vagrant   the fuzz harness's own cases (harness/fuzz.py run_case)
    schedule      `schedule add` with the README's options mutated (a word a line), systemd or --cron,
                  into a unit and a cron dir of the case's own
    env           the nightly job's env file (ispagent.env.example) mutated: `schedule add --env-file
                  --print`, and `schedule exec` (what the cron line runs) reading it
    ansible-ini   `inventory from-ansible -o FILE` of a mutated INI inventory, then `inventory check` of FILE
    ansible-yaml  the same for a YAML inventory or one of its group_vars/ host_vars/ files
    run-record    a state dir whose run.json or events.jsonl is mutated: `runs`, `runs --json`,
                  `runs show RUN --report-*`, `runs prune --keep 0 --include-resumable`
    metrics       the previous --metrics-file mutated, then `run --dry-run --metrics-file` over it: the
                  new file must parse as Prometheus text

"Outside where they belong": each case may write only its kind's outputs in its own case directory;
the rest of the workspace (the inputs a case reads, an intact neighbour run, a victim file), the
case's own input files, the worker's HOME and default state dir, and ispagent's system places
(/etc/systemd/system/ispagent-*, /etc/cron.d/ispagent-*, /etc/ispagent, /var/lib/ispagent) are
compared before and after every case (size, mode, mtime; what appeared or vanished).

Each kind runs in a worker process under harness/fuzz.py's watchdog (a case past --case-timeout is
run again once, then counted as a hang); the hypothesis examples (st.randoms, derandomized) run in a
worker of their own, with the same case function.

    PYTHONPATH=tests .venv/bin/python -m harness.inputs [--cases 200] [--hypothesis 100] [--kinds env,metrics]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import stat
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import fuzz, mutations
from harness.fuzz import CaseResult, Command, KindTotals

KINDS = (*fuzz.KINDS, "schedule", "env", "ansible-ini", "ansible-yaml", "run-record", "metrics")
ANSIBLE = mutations.REPO / "tests" / "data" / "ansible"
ANSIBLE_ROOTS = {"ansible-ini": ANSIBLE / "ini", "ansible-yaml": ANSIBLE / "yaml"}
ANSIBLE_SOURCES = {"ansible-ini": "hosts.ini", "ansible-yaml": "hosts.yaml"}
CASE_LIMITS = {
    "ansible-ini": 64 * 1024,
    "ansible-yaml": 64 * 1024,
    "schedule": 256 * 1024,
    "env": 256 * 1024,
    "run-record": 256 * 1024,
}  # as the property tests of those kinds: Ansible reads slowly
EXAMPLE_SECRETS = ("change-me-partner-password", "change-me-ledger-password", "not-for-ispagent")
RUN, OTHER = "20261101T020000-00abcd", "20261102T020000-00beef"
SYSTEM_PLACES = (Path("/etc/systemd/system"), Path("/etc/cron.d"), Path("/etc/ispagent"), Path("/var/lib/ispagent"))

# ------------------------------------------------------------------------------------ the cases


def case_of(kind: str, rng: random.Random) -> tuple[bytes, int]:
    """One input of `kind` from `rng`, and which of the kind's shipped files it damages."""
    originals = mutations.originals(kind)
    which = rng.randrange(len(originals))
    return mutations.mutated(rng, originals[which], kind, CASE_LIMITS.get(kind, mutations.MAX_CASE_BYTES)), which


class Workspace(fuzz.Workspace):
    """The fuzz harness's workspace, plus what the other kinds read: an inventory for `schedule add`, an
    intact run of a state dir's neighbour, a victim file that no case may touch, a HOME."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fleet = root / "fleet.yaml"
        self.fleet.write_bytes(mutations.originals("inventory")[0])
        self.victim = root / "victim"
        self.victim.mkdir()
        (self.victim / "precious").write_text("keep me\n")
        self.home = root / "home"
        self.home.mkdir()

    def guarded(self, case: Path, inputs: list[Path]) -> dict[str, tuple]:
        """What must not change while a case runs: all but the case directory, and the case's inputs."""
        seen: dict[str, tuple] = {}
        for place in (self.root, *SYSTEM_PLACES):
            _walk(place, seen, skip=case, only_ours=place in SYSTEM_PLACES)
        for path in inputs:
            _walk(path, seen, skip=None, only_ours=False)
        seen.pop(str(self.root / "playbooks" / "fuzzed.yaml"), None)  # the playbook kind's input, rewritten per case
        return seen


def _walk(path: Path, seen: dict[str, tuple], skip: Path | None, only_ours: bool) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        seen[str(path)] = (info.st_size, info.st_mode, info.st_mtime_ns)
        return
    # A directory's size and time change with the case dir in it: its entries, walked below, say more.
    seen[str(path)] = (info.st_mode,)
    for entry in os.scandir(path):
        child = Path(entry.path)
        if child == skip or (only_ours and not entry.name.startswith("ispagent")):
            continue
        _walk(child, seen, skip, only_ours=False)


def _touched(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    changed = [path for path in before.keys() & after.keys() if before[path] != after[path]]
    return sorted(changed + list(before.keys() ^ after.keys()))


def run_case(kind: str, data: bytes, which: int, workspace: Workspace, index: int, args) -> CaseResult:
    """One case of `kind` through its commands, judged; then what it touched outside its place."""
    from agent.secrets import forget_secrets

    if kind in fuzz.KINDS:
        before = workspace.guarded(workspace.case_dir, [])
        result = fuzz.run_case(kind, data, workspace, index, with_run=index % args.run_every == 0)
        _check_outside(result, before, workspace.guarded(workspace.case_dir, []))
        return result
    forget_secrets()
    case = workspace.new_case()
    result = CaseResult(kind, index)
    started, cpu_started = time.perf_counter(), time.process_time()
    inputs = CASES[kind](data, which, case, workspace, result, index, args, before=None)
    before = workspace.guarded(case, inputs)
    CASES[kind](data, which, case, workspace, result, index, args, before=before)
    after = workspace.guarded(case, inputs)
    _check_outside(result, before, after)
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    forget_secrets()
    return result


def _check_outside(result: CaseResult, before: dict, after: dict) -> None:
    touched = _touched(before, after)
    if not touched:
        return
    problem = f"outside: {len(touched)} path(s): {', '.join(touched[:3])}"
    if result.commands:
        result.commands[-1].problems.append(problem)
    else:
        result.commands.append(Command(["case"], -1, [problem]))


def _judged(args: list[str], unreachable_ok: bool = False) -> Command:
    """A command in-process, judged as the fuzz harness judges one, and no example secret printed."""
    exit_code, stdout, stderr, exception = fuzz.invoke(args)
    lines = stderr.strip("\n").splitlines()
    if exit_code == 2 and lines and lines[0].startswith("Usage: ") and lines[-1].startswith("Error: "):
        stderr = lines[-1] + "\n"  # click's usage error: its usage and hint lines, then the one error line
    command = fuzz.judge(args, exit_code, stdout, stderr, exception, unreachable_ok=unreachable_ok)
    if any(secret in stdout + stderr for secret in EXAMPLE_SECRETS):
        command.problems.append("secret printed")
    return command


# Each kind's case, called twice: first with before=None to write its inputs (returns the paths the
# case must not change), then with the guard taken to run its commands.


def _schedule(data, which, case, workspace, result, index, args, before):
    words_file = case / "words.txt"
    if before is None:
        words_file.write_bytes(data)
        return [words_file]
    words = data.replace(b"/etc/ispagent/fleet.yaml", os.fsencode(workspace.fleet)).replace(b"\x00", b"")
    argv = [os.fsdecode(word) for word in words.split(b"\n")]  # execve: no NUL in an argument
    here = os.getcwd()
    os.chdir(case)  # relative words (rel/dir) land in the case, where they belong
    try:
        result.commands.append(
            _judged(
                [
                    "schedule",
                    "add",
                    *argv,
                    *(["--cron"] if index % 2 else []),
                    "--unit-dir",
                    str(case / "units"),
                    "--cron-dir",
                    str(case / "cron"),
                ]
            )
        )
    finally:
        os.chdir(here)
    return []


def _env(data, which, case, workspace, result, index, args, before):
    env_file = case / "job.env"
    if before is None:
        env_file.write_bytes(data)
        env_file.chmod(0o600)
        return [env_file]
    playbook = workspace.root / "playbooks" / "reprovision.yaml"
    result.commands.append(
        _judged(
            [
                "schedule",
                "add",
                str(playbook),
                "-i",
                str(workspace.fleet),
                "--env-file",
                str(env_file),
                "--cron",
                "--print",
            ]
        )
    )
    # What the cron line runs: the env file read, then exec. The exec is the worker's own stand-in
    # (below); a real process runs it on every --subprocess-every'th case.
    result.commands.append(
        _judged(
            ["schedule", "exec", "--env-file", str(env_file), "--state-dir", str(case / "state"), "--", "/bin/true"]
        )
    )
    if index % args.subprocess_every == 0:
        result.commands.append(
            _process(
                [
                    "schedule",
                    "exec",
                    "--env-file",
                    str(env_file),
                    "--state-dir",
                    str(case / "state"),
                    "--",
                    "/bin/true",
                ],
                case,
                workspace,
                args.case_timeout,
            )
        )
    return []


def _ansible(data, which, case, workspace, result, index, args, before):
    kind = result.kind
    source_root = case / "src"
    root = ANSIBLE_ROOTS[kind]
    # The files in the order mutations.originals(kind) has them: `which` is an index into it.
    originals = sorted(root.rglob("*.y*ml")) if kind == "ansible-yaml" else [root / "hosts.ini"]
    if before is None:
        shutil.copytree(root, source_root)
        (source_root / originals[which].relative_to(root)).write_bytes(data)
        return [source_root]
    out = case / "fleet.yaml"
    command = _judged(["inventory", "from-ansible", str(source_root / ANSIBLE_SOURCES[kind]), "-o", str(out)])
    result.commands.append(command)
    if command.exit_code != 0 and out.exists():
        command.problems.append("partial write: a refused from-ansible wrote the inventory")
    if command.exit_code == 0:
        check = _judged(["inventory", "check", "-i", str(out), "--ssh-config", "/dev/null"])
        if check.exit_code != 0:
            check.problems.append(f"written inventory refused: {check.error[:200]}")
        result.commands.append(check)
    return []


def _run_record(data, which, case, workspace, result, index, args, before):
    state = case / "state"
    if before is None:
        (state / "runs" / OTHER).mkdir(parents=True)
        state.chmod(0o700)
        (state / "runs" / OTHER / "run.json").write_text(mutations.RUN_RECORD.replace(RUN, OTHER))
        (state / "runs" / RUN).mkdir()
        damaged = "events.jsonl" if which == 1 else "run.json"
        (state / "runs" / RUN / damaged).write_bytes(data)
        if damaged == "events.jsonl":
            (state / "runs" / RUN / "run.json").write_text(mutations.RUN_RECORD)
        return []  # its neighbour run is the state dir's: prune --keep 0 removes it (the victim is outside)
    out = case / "out"
    out.mkdir()
    for command in (
        ["runs"],
        ["runs", "--json"],
        [
            "runs",
            "show",
            RUN,
            "--report-json",
            str(out / "r.json"),
            "--junit",
            str(out / "r.xml"),
            "--report-html",
            str(out / "r.html"),
        ],
        ["runs", "prune", "--keep", "0", "--include-resumable"],
    ):
        args_ = [*command[:1], *command[1:], "--state-dir", str(state)]
        result.commands.append(_judged(args_))
    return []


def _metrics(data, which, case, workspace, result, index, args, before):
    metrics = case / "metrics.prom"
    if before is None:
        metrics.write_bytes(data)
        return []  # the previous file is the run's to replace
    playbook = workspace.root / "playbooks" / "smoke.yaml"
    command = _judged(
        [
            "run",
            str(playbook),
            "-i",
            str(workspace.inventory),
            "--dry-run",
            "--ssh-config",
            "/dev/null",
            "--state-dir",
            str(case / "state"),
            "-q",
            "--metrics-file",
            str(metrics),
        ],
        unreachable_ok=True,
    )
    result.commands.append(command)
    try:
        from prometheus_client.parser import text_string_to_metric_families

        names = {family.name for family in text_string_to_metric_families(metrics.read_text())}
        if "ispagent_run_exit_code" not in names:
            command.problems.append("partial write: the metrics file has no ispagent_run_exit_code")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        command.problems.append(f"partial write: the metrics file does not parse: {str(error)[:120]}")
    return []


CASES = {
    "schedule": _schedule,
    "env": _env,
    "ansible-ini": _ansible,
    "ansible-yaml": _ansible,
    "run-record": _run_record,
    "metrics": _metrics,
}


def _process(args: list[str], case: Path, workspace: Workspace, timeout: float) -> Command:
    import subprocess

    executable = Path(sys.executable).parent / "ispagent"
    argv = [str(executable)] if executable.exists() else [sys.executable, "-m", "agent"]
    env = {**os.environ, "ISPAGENT_STATE_DIR": str(case / "state"), "HOME": str(workspace.home)}
    try:
        done = subprocess.run(argv + args, capture_output=True, timeout=timeout, env=env, cwd=case)
    except subprocess.TimeoutExpired:
        return Command(["subprocess", *args], -1, [f"hang: over {timeout:g} s as a process"])
    return fuzz.judge(
        ["subprocess", *args],
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        None,
    )


# ------------------------------------------------------------------------------------- workers


def _stand_in_exec(path, argv, environment) -> None:
    """`schedule exec`'s execve in a worker: the environment it would get checked, then the end of the command
    (a real process runs the real exec on a sample)."""
    for key, value in environment.items():
        if "\x00" in key + value or "=" in key:
            raise ValueError(f"environment entry {key!r} cannot be passed to execve")
    raise SystemExit(0)


def worker(kind: str, mode: str, seed: int, first: int, last: int, args) -> None:
    """Cases first..last-1 of `kind` (seeded, or hypothesis's examples), one JSON line before and after each."""
    import agent.transport.ssh as ssh

    ssh.RETRY_BASE_DELAY = 0  # a closed loopback port: retrying it only waits (as harness/fuzz.py)
    os.execve = _stand_in_exec  # this worker's process runs cases only; subprocesses exec on their own
    for name in ("inventory", "run", "turnover", "forecast", "ledger", "schedule", "runs"):
        fuzz.invoke([name, "--help"])  # every command imported before the first case is timed
    with tempfile.TemporaryDirectory(prefix="ispagent-inputs-") as directory:
        workspace = Workspace(Path(directory))
        os.environ["HOME"] = str(workspace.home)
        os.environ["ISPAGENT_STATE_DIR"] = str(workspace.root / "default-state")

        def one(index: int, case: tuple[bytes, int]) -> None:
            print(json.dumps({"start": index}), flush=True)
            try:
                result = run_case(kind, *case, workspace, index, args)
            except Exception as error:  # the harness's own failure: shown as a problem, not a dead worker
                problem = f"traceback:harness: {error!r}"[:300]
                result = CaseResult(kind, index, commands=[Command(["harness"], -1, [problem])])
            print(json.dumps(asdict(result)), flush=True)

        if mode == "seeded":
            for index in range(first, last):
                one(index, case_of(kind, random.Random(f"{seed}/{kind}/{index}")))
            return
        _hypothesis_cases(kind, one, first, last)


def _hypothesis_cases(kind: str, one, first: int, last: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    counter = [0]

    @settings(
        max_examples=last, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(rng=st.randoms(use_true_random=False))
    def examples(rng) -> None:
        # The whole case is drawn every time, run or not: hypothesis requires the same draws for the same
        # example, and a restarted worker then meets the examples in the same order to skip those already run.
        case = case_of(kind, rng)
        index = counter[0]
        counter[0] += 1
        if first <= index < last:
            one(index, case)

    examples()


# ------------------------------------------------------------------------------------- the table


@dataclass
class CaseTotals(KindTotals):
    """A kind's totals, each case counted once: after a stall the restarted worker may report again a case
    whose result the killed one had written (a hypothesis run replays to where it was)."""

    seen: set = field(default_factory=set)

    def add(self, result: dict) -> None:
        if result["index"] in self.seen:
            return
        self.seen.add(result["index"])
        super().add(result)


@dataclass
class Row:
    kind: str
    seeded: KindTotals
    hypothesis: KindTotals

    def count(self, name: str) -> int:
        return getattr(self.seeded, name) + getattr(self.hypothesis, name)

    @property
    def outside(self) -> int:
        return sum(
            problem.startswith("outside")
            for totals in (self.seeded, self.hypothesis)
            for failure in totals.failures
            for command in failure["commands"]
            for problem in command["problems"]
        )

    @property
    def exits(self) -> dict[int, int]:
        merged: dict[int, int] = {}
        for totals in (self.seeded, self.hypothesis):
            for code, count in totals.exits.items():
                merged[int(code)] = merged.get(int(code), 0) + count
        return merged


HEADER = (
    "kind",
    "cases",
    "hypothesis",
    "cmds",
    "exit 0",
    "exit 1*",
    "exit 2",
    "tracebacks",
    "hangs",
    "outside",
    "multi-line",
    "long err",
    "secrets",
    "partial",
    "other exit",
    "stalls",
    "slowest",
)


def row_cells(row: Row) -> tuple[str, ...]:
    exits = row.exits
    slowest = max(row.seeded.slowest, row.hypothesis.slowest)
    return (
        row.kind,
        str(row.seeded.cases),
        str(row.hypothesis.cases),
        str(row.count("commands")),
        str(exits.get(0, 0)),
        str(exits.get(1, 0)),
        str(exits.get(2, 0)),
        str(row.count("tracebacks")),
        str(row.count("hangs")),
        str(row.outside),
        str(row.count("multi_line")),
        str(row.count("long_errors")),
        str(row.count("secrets")),
        str(row.count("partial_writes") + row.count("refused_output")),
        str(row.count("other_exits")),
        str(row.count("stalls")),
        f"{slowest[0]:.2f} s",
    )


def print_table(rows: list[Row], args) -> None:
    lines = [HEADER, *(row_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    for line in lines:
        cells = (cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths)))
        print("  ".join(cells))
    print(
        f"seed {args.seed}; cases: seeded cases, hypothesis: hypothesis examples (st.randoms, derandomized); "
        "exit 1*: run --dry-run with its host unreachable (what a user gets); an error is its one line (click's "
        "usage errors: the Error: line under click's usage and hint lines); long err: an error line over "
        f"{fuzz.LONG_ERROR} characters (a value echoed uncut); outside: cases that changed a file "
        "outside where the command may write; partial: a refused command that wrote, or an output that does not "
        "read back; other exit: any exit but 0, 2 (and 1*)",
        flush=True,
    )


def zero_columns(row: Row) -> dict[str, int]:
    """The columns that must be 0."""
    return {
        "tracebacks": row.count("tracebacks"),
        "hangs": row.count("hangs"),
        "outside": row.outside,
        "multi-line": row.count("multi_line"),
        "secrets": row.count("secrets"),
        "partial": row.count("partial_writes") + row.count("refused_output"),
        "other exit": row.count("other_exits"),
        "long errors": row.count("long_errors"),
    }


def run_kind(kind: str, args) -> Row:
    row = Row(kind, CaseTotals(kind), CaseTotals(kind))
    for mode, totals, cases in (("seeded", row.seeded, args.cases), ("hypothesis", row.hypothesis, args.hypothesis)):
        if cases:
            fuzz.run_kind(
                totals,
                argparse.Namespace(**{**vars(args), "cases": cases}),
                module="harness.inputs",
                extra=["--mode", mode],
            )
    return row


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200, help="seeded cases per kind")
    parser.add_argument("--hypothesis", type=int, default=100, help="hypothesis examples per kind")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--case-timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--run-every", type=int, default=20, help="inventory cases also given to run --dry-run")
    parser.add_argument("--subprocess-every", type=int, default=50, help="cases also run as a real process")
    parser.add_argument("--jobs", type=int, default=2, help="kinds run at once, each in its own worker")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="seeded", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def table(args) -> list[Row]:
    kinds = [kind.strip() for kind in args.kinds.split(",")]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(lambda kind: run_kind(kind, args), kinds))


def main() -> None:
    args = parser().parse_args()
    if args.worker:
        worker(args.worker, args.mode, args.seed, args.first, args.last, args)
        return
    started = time.perf_counter()
    rows = table(args)
    for row in rows:
        for totals in (row.seeded, row.hypothesis):
            for failure in totals.failures[:5]:
                print(
                    f"{row.kind} #{failure['index']}: "
                    + "; ".join(
                        f"{' '.join(map(str, c['args'][:3]))} -> {c['exit_code']}: {', '.join(c['problems'])} "
                        f"{c.get('error', '')[:160]!r}"
                        for c in failure["commands"]
                        if c["problems"]
                    ),
                    flush=True,
                )
    print_table(rows, args)
    print(f"wall {time.perf_counter() - started:.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
