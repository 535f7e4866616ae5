"""`facts`: what the host is (OS, hostname, arch, memory, address), in one round trip."""

from __future__ import annotations

from agent.runner.context import HostContext
from agent.steps.registry import StepResult, failed, ok, step

# One shell script, one round trip: every fact as a `key=value` line.
FACTS_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "os_name=${PRETTY_NAME:-unknown}"
echo "os_family=${ID_LIKE:-${ID:-unknown}}"
echo "hostname=$(hostname 2>/dev/null)"
echo "fqdn=$(hostname -f 2>/dev/null)"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "memory_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)"
echo "cpus=$(nproc 2>/dev/null || echo 1)"
ip4=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[ -n "$ip4" ] || ip4=$(hostname -I 2>/dev/null | awk '{print $1}')
echo "primary_ipv4=$ip4"
echo "user=$(id -un)"
"""

_INTEGERS = ("memory_mb", "cpus")


def parse_facts(text: str) -> dict[str, object]:
    facts: dict[str, object] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        facts[key] = int(value) if key in _INTEGERS and value.isdigit() else value
    return facts


@step("facts", read_only=True)
def gather_facts(ctx: HostContext, params) -> StepResult:
    """Gather OS, hostname, arch, memory and primary address for later steps and templates."""
    result = ctx.connection.run(FACTS_SCRIPT, log_output=False)
    if not result.ok:
        return failed(f"cannot gather facts: {result.error_line()}")
    ctx.facts = parse_facts(result.stdout)
    ctx.log.write("|", "facts: " + ", ".join(f"{k}={v}" for k, v in ctx.facts.items()))
    return ok(f"{ctx.facts.get('os_name')}, {ctx.facts.get('arch')}, {ctx.facts.get('memory_mb')} MB", facts=ctx.facts)
