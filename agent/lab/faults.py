"""SSH faults of running lab hosts, each applied inside one host's namespaces or to its processes.

| fault | what is done | undone by |
|---|---|---|
| `loss:P` | nftables in the host's network namespace drops P % of the packets at random (`numgen random`), on input and/or output of its eth0 | `clear_network` (or a restart) |
| `slow` | tc tbf on both ends of the host's veth: 256 kbit/s with up to 400 ms of queueing | `clear_network` (or a restart) |
| `sshd-stopped:N` | SIGSTOP to every sshd of the host (the listener and each session), SIGCONT N s later | the timer, or `continue_sshd` |
| `sshd-killed[:N]` | each sshd session SIGKILLed; the listener stops answering: its port resets connections | after N s, or `revive_sshd` |
| `restart` | a power cut and a boot: `Lab.restart` | - |

This kernel has no netem qdisc, so there is no fixed added delay and no reordering: tbf only
limits the rate (a queue builds up, and with it delay, when more is sent than the rate). The
listener cannot be killed outright: it is the host's PID 1 (a real host's sshd is not), and its end
takes the whole host down, which is the `restart` fault; from outside, a refused port and dead
sessions are what a killed sshd looks like.

Timers are detached processes (`sleep N; undo`): a fault ends on time even if whoever set it died.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.errors import LabError
from agent.lab import network
from agent.lab.commands import SYSTEM_PATH, run
from agent.lab.host import init_pid

FAULTS = {
    "loss:P": "P % of the host's packets dropped at random, both ways (nftables numgen)",
    "slow": "256 kbit/s link with up to 400 ms of queueing (tc tbf on both ends of the veth)",
    "sshd-stopped:N": "every sshd process of the host SIGSTOPped for N seconds",
    "sshd-killed": "sshd's sessions killed and its port refusing connections, for good",
    "sshd-killed:N": "the same, sshd answering again after N seconds",
    "restart": "the host power-cut and booted again (every process killed, /run and /dev fresh)",
}
SLOW_LINK = ("tbf", "rate", "256kbit", "burst", "4kb", "latency", "400ms")
LOSS_TABLE = "ispagent_loss"
SSHD_DOWN_TABLE = "ispagent_sshd_down"
SSH_PORT = 22
_timers: list[subprocess.Popen] = []  # kept so they are not collected (and warned about) while running


@dataclass(frozen=True)
class Fault:
    """One fault as written on a command line or in a bench: `kind` and its number, if any."""

    kind: str
    value: float | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_fault(text: str) -> Fault:
    """`loss:5`, `slow`, `sshd-stopped:20`, `sshd-killed`, `sshd-killed:10`, `restart` as a Fault."""
    kind, sep, number = text.partition(":")
    needs_number = {"loss": True, "sshd-stopped": True, "slow": False, "restart": False, "sshd-killed": None}
    if kind not in needs_number:
        raise LabError(f"unknown fault {text[:40]!r}; known: {', '.join(FAULTS)}")
    if not sep:
        if needs_number[kind]:
            raise LabError(f"fault {kind} needs a number: {kind}:N")
        return Fault(kind)
    if needs_number[kind] is False:
        raise LabError(f"fault {kind} takes no number")
    try:
        value = float(number)
    except ValueError:
        raise LabError(f"fault {kind}: {number[:20]!r} is not a number") from None
    if not 0 < value <= (100 if kind == "loss" else 3600):
        raise LabError(f"fault {kind}: {value:g} is out of range")
    return Fault(kind, value)


def apply_fault(lab, name: str, fault: Fault) -> None:
    """Put host `name` of `lab` under `fault` (see the module's table)."""
    if fault.kind == "loss":
        packet_loss(lab, name, int(fault.value))
    elif fault.kind == "slow":
        slow_link(lab, name)
    elif fault.kind == "sshd-stopped":
        stop_sshd(lab, name, fault.value)
    elif fault.kind == "sshd-killed":
        kill_sshd(lab, name, fault.value)
    elif fault.kind == "restart":
        lab.restart(name)


def packet_loss(lab, name: str, percent: int, *, input: bool = True, output: bool = True) -> None:
    """Drop `percent` % of host `name`'s packets at random on its eth0 (input, output or both)."""
    if not 0 < percent <= 100 or not (input or output):
        raise LabError(f"packet loss of {percent} % on no direction makes no fault")
    chains = []
    if input:
        chains.append(
            f'chain input {{ type filter hook input priority 0; iifname "eth0" '
            f"numgen random mod 100 < {percent} counter drop; }}"
        )
    if output:
        chains.append(
            f'chain output {{ type filter hook output priority 0; oifname "eth0" '
            f"numgen random mod 100 < {percent} counter drop; }}"
        )
    _nft(lab, name, f"table inet {LOSS_TABLE} {{\n" + "\n".join(chains) + "\n}")


def dropped_packets(lab, name: str) -> int:
    """Packets the loss fault of host `name` has dropped so far (0 when none is set)."""
    host = lab.host(name)
    done = subprocess.run(
        ["ip", "netns", "exec", host.netns, "nft", "-j", "list", "table", "inet", LOSS_TABLE],
        capture_output=True,
        text=True,
        env={"PATH": SYSTEM_PATH},
    )
    if done.returncode != 0:
        return 0
    rules = [item["rule"] for item in json.loads(done.stdout)["nftables"] if "rule" in item]
    return sum(part["counter"]["packets"] for rule in rules for part in rule["expr"] if "counter" in part)


def slow_link(lab, name: str) -> None:
    """Shape both ends of host `name`'s link with tbf (see SLOW_LINK)."""
    host = lab.host(name)
    _tc(host, "replace", SLOW_LINK)


def clear_network(lab, name: str) -> None:
    """Remove the loss, shaping and refused-port rules of host `name` (those absent are skipped)."""
    host = lab.host(name)
    _tc(host, "del", ())
    for table in (LOSS_TABLE, SSHD_DOWN_TABLE):
        _netns(host, ["nft", "delete", "table", "inet", table], check=False)


def sshd_pids(lab, name: str) -> list[int]:
    """Every sshd process of host `name` (the listener, its PID 1, first), as pids of this machine."""
    host = lab.host(name)
    first = init_pid(host)
    pids = [pid for pid in network.processes_in_netns([host.netns]) if _comm(pid) == "sshd"]
    return sorted(pids, key=lambda pid: (pid != first, pid))


def stop_sshd(lab, name: str, seconds: float | None) -> list[int]:
    """SIGSTOP every sshd of host `name`; SIGCONT them after `seconds` (a detached timer) unless None.

    The kernel still completes TCP handshakes into the stopped listener's backlog: a client
    connects, then waits for a banner that does not come until the processes go on.
    """
    pids = sshd_pids(lab, name)
    if not pids:
        raise LabError(f"{name}: no sshd process to stop")
    _signal(pids, signal.SIGSTOP)
    if seconds is not None:
        _later(seconds, ["kill", "-CONT", *map(str, pids)])
    return pids


def continue_sshd(pids: list[int]) -> None:
    _signal(pids, signal.SIGCONT)


def kill_sshd(lab, name: str, back_after: float | None = None) -> None:
    """sshd of host `name` goes away: its port resets every connection, each session is SIGKILLed.
    With `back_after`, sshd answers again that many seconds later."""
    host = lab.host(name)
    _nft(
        lab,
        name,
        f"table inet {SSHD_DOWN_TABLE} {{\nchain input {{ type filter hook input priority -10; "
        f"tcp dport {SSH_PORT} reject with tcp reset; }}\n}}",
    )
    _signal(sshd_pids(lab, name)[1:], signal.SIGKILL)
    if back_after is not None:
        _later(back_after, ["ip", "netns", "exec", host.netns, "nft", "delete", "table", "inet", SSHD_DOWN_TABLE])


def revive_sshd(lab, name: str) -> None:
    _netns(lab.host(name), ["nft", "delete", "table", "inet", SSHD_DOWN_TABLE], check=False)


def _nft(lab, name: str, ruleset: str) -> None:
    host = lab.host(name)
    table = ruleset.split()[2]
    _netns(host, ["nft", "delete", "table", "inet", table], check=False)  # re-applied, not stacked
    run(["ip", "netns", "exec", host.netns, "nft", "-f", "-"], input=ruleset + "\n", what=f"{name}: nft {table}")


def _tc(host, action: str, shape: tuple[str, ...]) -> None:
    for prefix, device in (([], host.veth), (["ip", "netns", "exec", host.netns], "eth0")):
        argv = [*prefix, "tc", "qdisc", action, "dev", device, "root", *shape]
        if action == "del":
            subprocess.run(argv, capture_output=True, env={"PATH": SYSTEM_PATH})  # none there: fine
        else:
            run(argv, what=f"{host.name}: tc on {device}")


def _netns(host, argv: list[str], *, check: bool) -> None:
    full = ["ip", "netns", "exec", host.netns, *argv]
    if check:
        run(full)
    else:
        subprocess.run(full, capture_output=True, env={"PATH": SYSTEM_PATH})


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _later(seconds: float, argv: list[str]) -> None:
    """Run `argv` after `seconds` in a detached process that outlives this one."""
    script = f'sleep {seconds:g}; exec "$@"'
    _timers[:] = [timer for timer in _timers if timer.poll() is None]
    _timers.append(
        subprocess.Popen(
            ["sh", "-c", script, "ispagent-fault-timer", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": SYSTEM_PATH},
        )
    )


def cancel_timers() -> None:
    """Stop the timers this process set that have not fired (a fault lifted by hand, a lab going down):
    a late `kill -CONT` or `nft delete` must not reach whatever has those pids or names by then."""
    for timer in _timers:
        if timer.poll() is None:
            timer.kill()
            timer.wait()
    _timers.clear()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
