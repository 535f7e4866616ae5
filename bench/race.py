"""Benchmark (not a test): one four-operation job over the same lab hosts by ispagent, pyinfra,
ansible-core and raw paramiko (the floor), interleaved, with medians and ratios.

The job, the same for every contender: a command (`mkdir -p DIR && hostname`), an upload (a 2 KB
file, mode 0640), a template (rendered with one var) and a command (`sha256sum` of the rendered
file into another file). Each run writes under a directory of its own (/srv/race/<token>), so
every run of every contender changes every host: nobody wins by finding its work done.

- ispagent: `python -m agent run` on a playbook, `--forks` = hosts.
- pyinfra: a deploy file, `--parallel` = hosts, strict host key checking against the lab's known_hosts.
- ansible-core: a playbook, forks = hosts, pipelining, ControlPersist, no fact gathering (its ssh
  masters are ended after each run, so each run opens its connections like the others).
- floor: the same remote operations on paramiko directly, one thread and connection per host
  (bench/race_floor.py: a script of its own, paramiko alone, nothing of this harness imported).

Every contender is a fresh process (its start-up counted), timed by wall clock and by the CPU it
and its children used, after one untimed warm-up run of each. Peers are installed by pip into a
bench virtualenv on first use (outside the repository). The machine load is printed beside each
size, since this machine is shared.

    .venv/bin/python bench/race.py [--sizes 50,100] [--repeat 3] [--contenders ispagent,pyinfra,ansible,floor]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_VENV = Path(os.environ.get("ISPAGENT_BENCH_VENV", "/var/cache/ispagent/bench-venv"))
PEERS = ["pyinfra", "ansible-core"]
CONTENDERS = ("ispagent", "pyinfra", "ansible", "floor")
TEMPLATE = "# written by the race\ngreeting = {{ greeting }}\n"
MOTD = ("Authorised use only. This server is managed; local changes may be overwritten.\n" * 26)[:2048]


def ensure_bench_venv() -> Path:
    """The bench virtualenv with pyinfra and ansible-core, made with pip on first use."""
    python = BENCH_VENV / "bin" / "python"
    if not (BENCH_VENV / "bin" / "pyinfra").exists() or not (BENCH_VENV / "bin" / "ansible-playbook").exists():
        print(f"installing {', '.join(PEERS)} into {BENCH_VENV} (first use)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
    return BENCH_VENV / "bin"


def peer_versions(bin_dir: Path) -> str:
    found = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    versions = {item["name"].lower(): item["version"] for item in json.loads(found.stdout or "[]")}
    return ", ".join(f"{name} {versions.get(name, '?')}" for name in PEERS)


# -- the job, written once per contender ------------------------------------------------------


class Job:
    """The files every contender's run needs, for the first `size` hosts of the lab."""

    def __init__(self, work: Path, lab, size: int) -> None:
        self.dir = work / f"job-{size}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.hosts = lab.hosts[:size]
        self.key = lab.identity_file
        self.known_hosts = lab.known_hosts_path
        (self.dir / "motd.txt").write_text(MOTD)
        (self.dir / "hello.conf.j2").write_text(TEMPLATE)
        self._ispagent_inventory()
        self._pyinfra_files()
        self._ansible_files()
        (self.dir / "floor-hosts.json").write_text(
            json.dumps(
                {
                    "hosts": [host.address for host in self.hosts],
                    "key": str(self.key),
                    "known_hosts": str(self.known_hosts),
                }
            )
        )

    def _ispagent_inventory(self) -> None:
        lines = [
            f"ssh: {{known_hosts: {self.known_hosts}}}",
            f"defaults: {{user: root, identity_file: {self.key}}}",
            "hosts:",
        ]
        lines += [f"  {host.name}: {{address: {host.address}}}" for host in self.hosts]
        (self.dir / "inventory.yaml").write_text("\n".join(lines) + "\n")

    def ispagent_playbook(self, token: str) -> Path:
        target = f"/srv/race/{token}"
        path = self.dir / f"race-{token}.yaml"
        path.write_text(
            "name: race\nvars: {greeting: hello}\nsteps:\n"
            f"  - shell: {{command: 'mkdir -p {target} && hostname'}}\n"
            f"  - upload: {{src: motd.txt, dest: {target}/motd, mode: '0640'}}\n"
            f"  - template: {{src: hello.conf.j2, dest: {target}/hello.conf}}\n"
            f"  - shell: {{command: 'sha256sum {target}/hello.conf > {target}/hello.sum'}}\n"
        )
        return path

    def _pyinfra_files(self) -> None:
        data = {
            "ssh_user": "root",
            "ssh_key": str(self.key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }
        hosts = ",\n".join(f"    ({host.address!r}, {data!r})" for host in self.hosts)
        (self.dir / "pyinfra_inventory.py").write_text(f"race = [\n{hosts},\n]\n")
        (self.dir / "deploy.py").write_text(f"""import os
from pyinfra.operations import files, server

target = "/srv/race/" + os.environ["RACE_TOKEN"]
server.shell(name="mkdir and hostname", commands=["mkdir -p " + target + " && hostname"])
files.put(name="upload", src={str(self.dir / "motd.txt")!r}, dest=target + "/motd", mode="640")
files.template(name="template", src={str(self.dir / "hello.conf.j2")!r}, dest=target + "/hello.conf", greeting="hello")
server.shell(name="sum", commands=["sha256sum " + target + "/hello.conf > " + target + "/hello.sum"])
""")

    def _ansible_files(self) -> None:
        hosts = "\n".join(f"{host.name} ansible_host={host.address}" for host in self.hosts)
        (self.dir / "ansible_hosts.ini").write_text(
            f"[race]\n{hosts}\n\n[race:vars]\nansible_user=root\nansible_ssh_private_key_file={self.key}\n"
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        control = self.dir / "cp"
        control.mkdir(exist_ok=True)
        (self.dir / "ansible.cfg").write_text(
            f"[defaults]\nforks = {self.size}\nhost_key_checking = True\ngathering = explicit\n"
            "retry_files_enabled = False\nstdout_callback = default\n\n[ssh_connection]\npipelining = True\n"
            f"control_path_dir = {control}\n"
            f"ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile={self.known_hosts} "
            "-o StrictHostKeyChecking=yes\n"
        )
        (self.dir / "race.yml").write_text(f"""- hosts: race
  gather_facts: false
  vars: {{greeting: hello, target: "/srv/race/{{{{ token }}}}"}}
  tasks:
    - shell: "mkdir -p {{{{ target }}}} && hostname"
    - copy: {{src: {self.dir / "motd.txt"}, dest: "{{{{ target }}}}/motd", mode: "0640"}}
    - template: {{src: {self.dir / "hello.conf.j2"}, dest: "{{{{ target }}}}/hello.conf"}}
    - shell: "sha256sum {{{{ target }}}}/hello.conf > {{{{ target }}}}/hello.sum"
""")

    def command(self, contender: str, token: str, bin_dir: Path | None, state: Path) -> tuple[list[str], dict]:
        env = dict(os.environ)
        if contender == "ispagent":
            env["ISPAGENT_STATE_DIR"] = str(state)
            return [
                sys.executable,
                "-m",
                "agent",
                "run",
                str(self.ispagent_playbook(token)),
                "-i",
                str(self.dir / "inventory.yaml"),
                "--forks",
                str(self.size),
                "-q",
                "--ssh-config",
                "/dev/null",
            ], env
        if contender == "pyinfra":
            env["RACE_TOKEN"] = token
            return [
                str(bin_dir / "pyinfra"),
                str(self.dir / "pyinfra_inventory.py"),
                str(self.dir / "deploy.py"),
                "--parallel",
                str(self.size),
                "-y",
            ], env
        if contender == "ansible":
            env["ANSIBLE_CONFIG"] = str(self.dir / "ansible.cfg")
            return [
                str(bin_dir / "ansible-playbook"),
                "-i",
                str(self.dir / "ansible_hosts.ini"),
                str(self.dir / "race.yml"),
                "-e",
                f"token={token}",
            ], env
        return [
            sys.executable,
            str(Path(__file__).with_name("race_floor.py")),
            str(self.dir / "floor-hosts.json"),
            token,
            str(self.dir / "motd.txt"),
            str(self.dir / "hello.conf.j2"),
        ], env


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy so far (/proc/stat): the lab's sshds included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed_run(argv: list[str], env: dict, cwd: Path) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (the process and its children), the machine's CPU seconds in that
    time (the hosts' side of the work too), exit code and the output's tail."""
    machine = machine_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    return (
        wall,
        usage.ru_utime + usage.ru_stime,
        machine_cpu_seconds() - machine,
        os.waitstatus_to_exitcode(status),
        output.decode(errors="replace")[-600:],
    )


# -- the race ---------------------------------------------------------------------------------


def race(sizes: list[int], repeat: int, contenders: list[str], work: Path, lab_dir: Path | None) -> None:
    from agent.lab import Lab

    bin_dir = ensure_bench_venv() if {"pyinfra", "ansible"} & set(contenders) else None
    print(
        f"{os.cpu_count()} CPUs; {peer_versions(bin_dir) if bin_dir else 'no peers'}; {repeat} repetitions, "
        f"contenders interleaved (order rotated each repetition)",
        flush=True,
    )
    lab = Lab(lab_dir or work / "lab")  # a lab of its own, beside any other on the machine
    try:
        began = time.perf_counter()
        lab.up(max(sizes))
        print(f"lab up: {max(sizes)} hosts in {time.perf_counter() - began:.1f} s", flush=True)
        for size in sizes:
            job = Job(work, lab, size)
            walls: dict[str, list[float]] = {name: [] for name in contenders}
            cpus: dict[str, list[float]] = {name: [] for name in contenders}
            loads = [os.getloadavg()[0]]
            rounds: list[dict[str, float]] = []  # each repetition's walls: its contenders ran side by side in time
            warm_up(job, contenders, bin_dir, work / "state")
            for repetition in range(repeat):
                order = contenders[repetition % len(contenders) :] + contenders[: repetition % len(contenders)]
                rounds.append({})
                for name in order:
                    wall, cpu, machine, code, tail = run_contender(job, name, bin_dir, work / "state")
                    if code != 0:
                        print(f"  {name} failed (exit {code}) at {size} hosts:\n{tail}", flush=True)
                        continue
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    rounds[-1][name] = wall
                    print(
                        f"  {size} hosts, rep {repetition + 1}: {name:<9} {wall:6.2f} s wall  {cpu:6.2f} s CPU  "
                        f"{machine:6.2f} s machine CPU  (load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                    loads.append(os.getloadavg()[0])
                lab_cleanup(lab, job)
            report(size, walls, cpus, loads)
            report_pairs(rounds)
    finally:
        down = lab.down()
        print(f"lab down: {down.seconds:.1f} s")


def warm_up(job: Job, contenders: list[str], bin_dir: Path | None, state: Path) -> None:
    """One untimed run of each contender before the timed ones. The first run on a fresh lab pays
    for what no later run does (the hosts' page cache, bytecode written on first import): at 50
    hosts, whichever contender went first took up to 1.3x its median."""
    for name in contenders:
        code = run_contender(job, name, bin_dir, state)[3]
        print(f"  {job.size} hosts, warm-up: {name:<9} exit {code}", flush=True)


def run_contender(job: Job, name: str, bin_dir: Path | None, state: Path) -> tuple[float, float, float, int, str]:
    """One timed run of contender `name` on a directory of its own (see timed_run); Ansible's ssh
    masters are ended after it."""
    argv, env = job.command(name, uuid.uuid4().hex[:12], bin_dir, state)
    result = timed_run(argv, env, job.dir)
    if name == "ansible":
        stop_ansible_masters(job)
    return result


def stop_ansible_masters(job: Job) -> None:
    """End the ssh masters ansible leaves behind (ControlPersist), untimed: left running they keep a
    process per host on both ends for the next contenders, and the next ansible run would skip its
    handshakes, which no other contender can."""
    control = str(job.dir / "cp")
    subprocess.run(["pkill", "-f", control], check=False)
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", control], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)


def lab_cleanup(lab, job: Job) -> None:
    """Remove the runs' directories (untimed), so a long race does not fill the hosts' overlays."""
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(str(job.key))

    def clean(address: str) -> None:
        client = paramiko.SSHClient()
        client.load_host_keys(str(job.known_hosts))
        client.connect(address, username="root", pkey=key, look_for_keys=False, allow_agent=False, timeout=30)
        client.exec_command("rm -rf /srv/race")[1].read()
        client.close()

    threads = [threading.Thread(target=clean, args=(host.address,)) for host in job.hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def report(size: int, walls: dict[str, list[float]], cpus: dict[str, list[float]], loads: list[float]) -> None:
    medians = {name: statistics.median(times) for name, times in walls.items() if times}
    print(
        f"\n{size} hosts: median wall (CPU) over {max(len(t) for t in walls.values())} runs; "
        f"load average {min(loads):.2f}-{max(loads):.2f} during the runs"
    )
    floor = medians.get("floor")
    ours = medians.get("ispagent")
    for name, median in sorted(medians.items(), key=lambda item: item[1]):
        ratios = []
        if floor and name != "floor":
            ratios.append(f"{median / floor:.2f}x the floor")
        if ours and name not in ("ispagent", "floor"):
            ratios.append(f"{median / ours:.2f}x ispagent's time")
        print(f"  {name:<9} {median:7.2f} s  ({statistics.median(cpus[name]):6.2f} s CPU)  {'; '.join(ratios)}")
    print(flush=True)


def report_pairs(rounds: list[dict[str, float]]) -> None:
    """ispagent against the floor and each peer against ispagent, repetition by repetition. The
    contenders of one repetition ran seconds apart, so these ratios move less with the
    machine's speed than the ratio of medians taken over the whole call."""
    for numerator, denominator in [("ispagent", "floor")] + [(peer, "ispagent") for peer in ("pyinfra", "ansible")]:
        ratios = [r[numerator] / r[denominator] for r in rounds if numerator in r and denominator in r]
        if ratios:
            # The quartiles say how far the machine's drift alone moves one repetition's ratio.
            spread = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            print(
                f"  {numerator}/{denominator}, each repetition: {', '.join(f'{x:.2f}' for x in ratios)}; "
                f"median {statistics.median(ratios):.2f}x (quartiles {spread[0]:.2f}-{spread[2]:.2f})",
                flush=True,
            )
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--lab-dir", type=Path, help="lab directory (default: a temporary one)")
    options = parser.parse_args()
    contenders = [name for name in options.contenders.split(",") if name]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        raise SystemExit(
            f"race: unknown contender(s) {', '.join(sorted(unknown))}; choose from {', '.join(CONTENDERS)}"
        )
    work = Path(tempfile.mkdtemp(prefix="ispagent-race-"))
    try:
        race([int(size) for size in options.sizes.split(",")], options.repeat, contenders, work, options.lab_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
