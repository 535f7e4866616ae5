"""`facts`: what the host is (OS, hostname, arch, memory, address), in one round trip."""

from __future__ import annotations

from agent.panel.hostprobe import CPU_COUNT_PROBE, MEMORY_KB_PROBE, PRIMARY_IPV4, PRIMARY_IPV4_PROBE, Ipv4Reading
from agent.runner.context import HostContext
from agent.runner.registry import NoParams, StepResult, failed, ok, step

# One shell script, one round trip: every fact as a `key=value` line. Shell builtins wherever
# possible: at fleet scale the forks on the host are what this step costs.
FACTS_SCRIPT = (
    r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "os_name=${PRETTY_NAME:-unknown}"
echo "os_family=${ID_LIKE:-${ID:-unknown}}"
read -r name < /proc/sys/kernel/hostname; echo "hostname=$name"
echo "fqdn=$(hostname -f 2>/dev/null)"
read -r kernel < /proc/sys/kernel/osrelease; echo "kernel=$kernel"
{ read -r arch < /proc/sys/kernel/arch; } 2>/dev/null || arch=$(uname -m)
echo "arch=$arch"
__MEMORY__
[ -n "${memory_kb:-}" ] && echo "memory_mb=$((memory_kb / 1024))"
__CPUS__
echo "cpus=$cpus"
__IPV4__
echo "primary_ipv4=$ip4"
echo "user=${USER:-$(id -un)}"
""".replace("__MEMORY__", MEMORY_KB_PROBE)
    .replace("__CPUS__", CPU_COUNT_PROBE)
    .replace("__IPV4__", PRIMARY_IPV4_PROBE)
)

_INTEGERS = ("memory_mb", "cpus")


def parse_facts(text: str) -> dict[str, object]:
    facts: dict[str, object] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        facts[key] = int(value) if key in _INTEGERS and value.isdigit() else value
    return facts


@step("facts", read_only=True, provides=(PRIMARY_IPV4,))
def gather_facts(ctx: HostContext, params: NoParams) -> StepResult:
    """Gather OS, hostname, arch, memory and primary address for later steps and templates."""
    result = ctx.connection.run(FACTS_SCRIPT, log_output=False)
    if not result.ok:
        return failed(f"cannot gather facts: {result.error_line()}")
    ctx.facts = parse_facts(result.stdout)
    if "primary_ipv4" in ctx.facts:  # preflight reuses it while no step has changed the host since
        ctx.state.set(PRIMARY_IPV4, Ipv4Reading(str(ctx.facts["primary_ipv4"]), ctx.host_changes()))
    ctx.log.write("|", "facts: " + ", ".join(f"{k}={v}" for k, v in ctx.facts.items()))
    return ok(f"{ctx.facts.get('os_name')}, {ctx.facts.get('arch')}, {ctx.facts.get('memory_mb')} MB", facts=ctx.facts)
