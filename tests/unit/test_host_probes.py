"""The preflight and verify probes run for real by this machine's /bin/sh (dash on Debian) against
its own /proc, files and sockets, and the processes each starts counted in a PID namespace of its
own (`ns_last_pid`): at fleet scale those processes are what an audit costs each host."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.panel.hostprobe import CPU_COUNT_PROBE, gather_script, license_info_read, parse_host_facts
from agent.panel.panelprobe import panel_probe_script, parse_panel_probe

REPO = Path(__file__).resolve().parents[2]
EMULATED_MGR5 = REPO / "agent" / "lab" / "installer_emulator" / "mgr5"
UNREACHABLE = "http://127.0.0.1:9/repo/"  # the discard port: refused at once

# The script's shell and every process it starts, in a PID namespace where nothing else runs;
# SETUP runs first, before counting (a tmpfs over /usr/local holding the emulated panel).
COUNTER = r"""
set -e
eval "$SETUP"
set +e
before=$(cat /proc/sys/kernel/ns_last_pid)
sh -c "$SCRIPT" > "$OUT" 2>/dev/null
after=$(cat /proc/sys/kernel/ns_last_pid)
echo $((after - before - 1))
"""


def run_counted(script: str, out: Path, setup: str = ":") -> tuple[int, str]:
    """(processes the script started, its own shell included; its output)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("counting processes needs a PID namespace (root and unshare)")
    env = {**os.environ, "SCRIPT": script, "OUT": str(out), "SETUP": setup}
    done = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", COUNTER],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]), out.read_text()


def installed_panel_setup(tmp_path: Path) -> str:
    """Shell lines that put the lab's emulated panel, licensed, at /usr/local/mgr5 in this mount namespace."""
    tree = tmp_path / "mgr5"
    shutil.copytree(EMULATED_MGR5, tree)
    (tree / "etc" / "ispmgr.lic").write_text(json.dumps({"licid": "4000013", "panel_name": "ISPmanager Lite"}))
    return f"mount -t tmpfs ispagent-test /usr/local && cp -a {tree} /usr/local/mgr5"


def test_verify_probe_reads_sockets_license_and_digests_in_one_program(tmp_path: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    plain, odd, missing = tmp_path / "ispagent.conf", tmp_path / "back\\slash\nname", tmp_path / "missing"
    plain.write_text("a = 1\n")
    odd.write_text("b = 2\n")
    try:
        done = subprocess.run(
            ["sh", "-c", panel_probe_script([str(plain), str(odd), str(missing)])],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        listener.close()
    probe = parse_panel_probe(done.stdout)
    assert probe.complete and f"tcp://127.0.0.1:{port}" in probe.listening
    assert probe.license_info == {}  # no panel on this machine: mgrctl not found
    digest = hashlib.sha256
    assert probe.file_matches(str(plain), digest(b"a = 1\n").hexdigest())
    assert probe.file_matches(str(odd), digest(b"b = 2\n").hexdigest())  # sha256sum's escaped line
    assert not probe.file_matches(str(plain), digest(b"a = 2\n").hexdigest())
    assert not probe.file_matches(str(missing), digest(b"").hexdigest())


def test_verify_probe_starts_mgrctl_and_one_sha256sum_only(tmp_path: Path):
    files = [tmp_path / f"file{index}.conf" for index in range(3)]
    for file in files:
        file.write_text(file.name)
    processes, out = run_counted(
        panel_probe_script([str(f) for f in files]), tmp_path / "out", installed_panel_setup(tmp_path)
    )
    probe = parse_panel_probe(out)
    assert probe.complete and probe.license_info["licid"] == "4000013"
    assert all(probe.file_matches(str(f), hashlib.sha256(f.name.encode()).hexdigest()) for f in files)
    # the shell, ss, mgrctl, sha256sum (each command substitution execs its command): ss costs the host
    # less than the shell's own read of /proc/net/tcp{,6} (agent/panel/listening.py)
    assert processes == 4


def test_preflight_probe_of_an_installed_panel_stops_after_what_that_answer_needs(tmp_path: Path):
    processes, out = run_counted(gather_script(UNREACHABLE), tmp_path / "out", installed_panel_setup(tmp_path))
    facts = parse_host_facts(out)
    assert facts.installed and not facts.complete and facts.license_info["licid"] == "4000013"
    assert facts.os_id and "primary_ipv4=" in out
    assert "repository" not in out and "memory_kb" not in out  # the installer's rules are not applied to it
    assert processes == 3  # the shell, mgrctl, ip


def test_preflight_probe_given_the_address_facts_read_starts_no_ip(tmp_path: Path):
    script = gather_script(UNREACHABLE, primary_ipv4="198.18.0.7")
    processes, out = run_counted(script, tmp_path / "out", installed_panel_setup(tmp_path))
    assert parse_host_facts(out).primary_ipv4 == "198.18.0.7"
    assert processes == 2  # the shell, mgrctl: an audit's preflight after facts


def test_preflight_probe_of_a_host_to_judge_gathers_every_fact_in_few_processes(tmp_path: Path):
    processes, out = run_counted(gather_script(UNREACHABLE), tmp_path / "out")
    facts = parse_host_facts(out)
    assert facts.complete and not facts.installed
    assert facts.uid == os.geteuid()  # id -u, read by the shell from /proc/self/status
    assert facts.os_id and facts.arch == os.uname().machine
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert facts.memory_mb == int(meminfo["MemTotal"].split()[0]) // 1024
    assert facts.disk_root_mb is not None and facts.disk_usr_local_mb is not None
    assert facts.repository_reachable is False and facts.repository_error  # nothing listens on the discard port
    # was 24 with a process per fact: now the shell, ip, df, hostname -f, curl, dpkg-query and
    # the command substitutions around them
    assert processes <= 10, processes


def test_preflight_probe_in_full_when_asked_even_with_a_panel_installed(tmp_path: Path):
    _, out = run_counted(gather_script(UNREACHABLE, full=True), tmp_path / "out", installed_panel_setup(tmp_path))
    facts = parse_host_facts(out)
    assert facts.complete and facts.installed and facts.memory_mb > 0 and facts.panel_version == "6.110.0"


def test_verify_probe_without_license_info_starts_no_mgrctl(tmp_path: Path):
    file = tmp_path / "ispagent.conf"
    file.write_text("a = 1\n")
    processes, out = run_counted(
        panel_probe_script([str(file)], license_info=False), tmp_path / "out", installed_panel_setup(tmp_path)
    )
    probe = parse_panel_probe(out)
    assert probe.complete and probe.file_matches(str(file), hashlib.sha256(b"a = 1\n").hexdigest())
    assert "license_rc=" not in out
    assert processes == 3  # the shell, ss, sha256sum: verify reuses what preflight's mgrctl said


def broken_mgrctl(tmp_path: Path) -> str:
    """The emulated panel with an mgrctl that prints a license.info and fails (exit 3)."""
    setup = installed_panel_setup(tmp_path)
    (tmp_path / "mgr5" / "sbin" / "mgrctl").write_text("#!/bin/sh\necho licid=4000077\nexit 3\n")
    return setup


@pytest.mark.parametrize(
    "setup",
    [
        installed_panel_setup,
        lambda tmp_path: installed_panel_setup(tmp_path) + " && rm /usr/local/mgr5/etc/ispmgr.lic",  # no license
        lambda tmp_path: installed_panel_setup(tmp_path) + " && chmod -x /usr/local/mgr5/sbin/mgrctl",
        broken_mgrctl,
        lambda tmp_path: "mount -t tmpfs ispagent-test /usr/local",  # no panel
    ],
    ids=["licensed", "no-license", "mgrctl-not-executable", "mgrctl-fails", "no-panel"],
)
def test_preflight_reads_license_info_as_verify_probe_does(tmp_path: Path, setup):
    """What verify reuses from preflight is what its own probe would have read on the same host."""
    lines = setup(tmp_path)
    _, preflight_out = run_counted(gather_script(UNREACHABLE), tmp_path / "preflight", lines)
    _, verify_out = run_counted(panel_probe_script([]), tmp_path / "verify", lines)
    assert parse_panel_probe(verify_out).complete
    assert license_info_read(preflight_out) == parse_panel_probe(verify_out).license_info


def test_preflight_probe_cut_short_leaves_no_license_info_to_reuse():
    assert license_info_read("os_id=debian\nmgr5=1\n") is None
    assert license_info_read("os_id=debian\n") is None
    assert license_info_read("os_id=debian\nprimary_ipv4=198.18.0.2\n") == {}


def test_python_mgrctl_answers_license_info_without_site_or_unneeded_modules(tmp_path: Path):
    """The lab's sbin/mgrctl (sh) hands license files it cannot read itself, and every other call, to its
    Python implementation: that must start as cheaply as Python can (the real mgrctl is a native binary),
    so it is run as its own first line says, and asked what it imported."""
    installed_panel_setup(tmp_path)
    mgrctl = tmp_path / "mgr5" / "libexec" / "mgrctl.py"
    interpreter = mgrctl.read_text().splitlines()[0].removeprefix("#!").split()
    assert interpreter[1:] == ["-IS"]
    env = {"ISPMGR_EMULATOR_ROOT": str(tmp_path / "root"), "PATH": os.environ["PATH"]}
    (tmp_path / "root" / "usr" / "local").mkdir(parents=True)
    shutil.copytree(tmp_path / "mgr5", tmp_path / "root" / "usr" / "local" / "mgr5")
    done = subprocess.run(
        [*interpreter, "-X", "importtime", str(mgrctl), "-m", "ispmgr", "license.info"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 0 and "licid=4000013" in done.stdout.splitlines()
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "json" in imported
    assert not imported & {"site", "subprocess", "signal"}, imported  # subprocess only for restarts


ONLINE_CPUS = "/sys/devices/system/cpu/online"
# What the kernel writes there: ranges and single ids, comma-separated, no leading zeros.
_CPULIST = re.compile(r"(0|[1-9][0-9]*)(-(0|[1-9][0-9]*))?(,(0|[1-9][0-9]*)(-(0|[1-9][0-9]*))?)*")


def processor_lines() -> int:
    return sum(
        1 for line in Path("/proc/cpuinfo").read_text().splitlines() if line.split(":")[0].strip() == "processor"
    )


def cpulist(cpus: set[int]) -> str:
    """`cpus` written as the kernel writes a cpulist: runs of consecutive ids as FIRST-LAST."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def expected_cpus(text: str) -> int:
    """The count a well-formed cpulist gives; for anything else, the /proc/cpuinfo count."""
    if not _CPULIST.fullmatch(text):
        return processor_lines()
    total = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        if last and int(last) < int(first):
            return processor_lines()
        total += int(last or first) - int(first) + 1
    return total or processor_lines()


def cpus_counted(tmp_path: Path, online: str | None) -> tuple[int, int]:
    """(processes the probe started, the count it printed), with `online` as the kernel's cpulist."""
    setup = ":"
    if online is not None:
        (tmp_path / "online").write_text(online + "\n")
        setup = f"mount --bind {tmp_path / 'online'} {ONLINE_CPUS}"
    processes, out = run_counted(CPU_COUNT_PROBE + '\necho "cpus=$cpus"', tmp_path / "out", setup)
    return processes, int(out.split("cpus=")[-1])


def test_cpu_count_probe_counts_this_machines_online_cpus_with_its_shell_only(tmp_path: Path):
    assert cpus_counted(tmp_path, None) == (1, processor_lines())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(min_value=0, max_value=4095), min_size=1, max_size=80))
def test_cpu_count_probe_reads_any_cpulist_the_kernel_writes(tmp_path: Path, cpus: set[int]):
    assert cpus_counted(tmp_path, cpulist(cpus))[1] == len(cpus)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="0123456789-, x", max_size=16))
@example("")
@example("3-1")
@example("08-09")
@example("0-1-2")
@example("0,,1")
@example("0,")
@example(",0")
@example("99999999999999999999999-1")
def test_cpu_count_probe_leaves_a_list_it_does_not_recognise_to_proc_cpuinfo(tmp_path: Path, online: str):
    """Any other text (a mutation of the kernel's list) gives the /proc/cpuinfo count, never a guess or an error."""
    processes, counted = cpus_counted(tmp_path, online)
    assert counted == expected_cpus(online.strip())
    assert processes == 1
