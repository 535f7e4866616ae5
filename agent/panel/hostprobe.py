"""The host probe: one shell program that says what a server is and what it holds, and what it means.

The preflight step runs it before any license is paid for; `Preflight` is what later steps (license,
installer, verify, configure's templates) read of it, under the state key PREFLIGHT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.hoststate import StateKey
from agent.installer.state import INSTALLER_DIR
from agent.panel.listening import LISTENING_SOCKETS, listening_sockets, url_port
from agent.panel.mgrctl import CORE, MGRCTL, parse_key_values
from agent.panel.preflight_rules import PANEL_PORTS, HostFacts, Verdict
from agent.transport.quoting import command_line

# Shell probes shared with the facts step: builtins where they can be (forks on the host are what
# a probe costs at fleet scale).
MEMORY_KB_PROBE = (
    'while read -r key value unit; do [ "$key" = MemTotal: ] && memory_kb=$value && break; done < /proc/meminfo'
)
# The online CPUs, as many as /proc/cpuinfo has "processor" lines, counted from the kernel's cpulist
# ("0-3,6"): the shell's `read` takes a byte per system call, and /proc/cpuinfo is about 1.2 KB per
# CPU (150 KB on a 128-core server) and slow to read in a VM (measured on a lab host: 3.3 ms against
# 0.4 ms). A list this does not recognise is left to the old count, so the answer is never a guess.
CPU_COUNT_PROBE = r"""cpus=
if { read -r online < /sys/devices/system/cpu/online; } 2>/dev/null; then
  cpus=0
  case $online in ,*|*,) online=;; esac  # an empty first or last range: not a kernel's list
  while [ -n "$online" ]; do
    range=${online%%,*}
    case $online in *,*) online=${online#*,};; *) online=;; esac
    case $range in
      *[!0-9-]*|-*|*-|*-*-*|0[0-9]*|*-0[0-9]*|'') cpus=; break;;  # no octal: a leading 0 is no kernel's
      *-*) first=${range%-*} last=${range#*-}
        [ "$last" -ge "$first" ] 2>/dev/null || { cpus=; break; }
        cpus=$((cpus + last - first + 1));;
      *) cpus=$((cpus + 1));;
    esac
  done
fi
if [ "${cpus:-0}" = 0 ]; then
  cpus=0
  while read -r key rest; do [ "$key" = processor ] && cpus=$((cpus + 1)); done < /proc/cpuinfo
fi"""
PRIMARY_IPV4_PROBE = r"""set -- $(ip -4 -o route get 1.1.1.1 2>/dev/null)
while [ $# -gt 1 ] && [ "$1" != src ]; do shift; done
ip4=${2:-}
[ -n "$ip4" ] || { set -- $(hostname -I 2>/dev/null); ip4=${1:-}; }"""


@dataclass(frozen=True)
class Ipv4Reading:
    """The primary IPv4 as the facts step's PRIMARY_IPV4_PROBE read it, and the host's HOST_CHANGES
    count then: preflight reuses it (one `ip` process less per host) only while that count has not
    moved."""

    address: str
    host_changes: int = 0


PRIMARY_IPV4: StateKey[Ipv4Reading] = StateKey("primary_ipv4", "the primary IPv4 as read (the facts step)")

# One round trip: every fact as a `key=value` line (license.info lines prefixed `lic.`). Builtins
# wherever they give the same answer: a probe's cost at fleet scale is the processes it starts on
# the host. A host whose panel is installed is not judged (preflight_rules.evaluate), so the probe
# stops after what that answer needs and says `probe=short`; the preflight step probes again in
# full (gather_script(full=True)) should Python's reading of license.info disagree.
_GATHER = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-}"; echo "os_version=${VERSION_ID:-}"; echo "os_codename=${VERSION_CODENAME:-}"
echo "os_like=${ID_LIKE:-}"
[ -f /etc/redhat-release ] && echo redhat_release=1
[ -d /usr/local/ispmgr ] && echo old_panel=1
pid=
{ read -r pid < __DIR__/install.pid; } 2>/dev/null
install=
if [ -n "$pid" ] && [ ! -e __DIR__/install.rc ]; then
  install=interrupted
  if [ -r /proc/$pid/cmdline ]; then
    case "$(tr '\0' ' ' < /proc/$pid/cmdline)" in *ispagent-install*) install=running;; esac
  fi
  echo "install_$install=1"
fi
lic=
if [ -x __MGRCTL__ ]; then
  echo mgr5=1
  lic=$(__MGRCTL__ -m ispmgr license.info 2>/dev/null)
  echo "license_rc=$?"
  [ -n "$lic" ] && while IFS= read -r line; do printf 'lic.%s\n' "$line"; done <<ISPAGENT_LICENSE_INFO
$lic
ISPAGENT_LICENSE_INFO
fi
__IPV4__
echo "primary_ipv4=$ip4"
case "$install:$lic" in
  :*=*) [ "${ISPAGENT_PROBE:-}" = full ] || { echo probe=short; exit 0; };;
esac
{ read -r arch < /proc/sys/kernel/arch; } 2>/dev/null || arch=$(uname -m)
echo "arch=$arch"
__MEMORY__
echo "memory_kb=${memory_kb:-}"
disks=$(df -Pm / /usr/local 2>/dev/null)
n=0
while IFS= read -r line; do
  case $n in 1) echo "df_root=$line";; 2) echo "df_usr_local=$line";; esac; n=$((n + 1))
done <<ISPAGENT_DF
$disks
ISPAGENT_DF
echo "hostname_f=$(hostname -f 2>/dev/null)"
{ read -r name < /proc/sys/kernel/hostname; } 2>/dev/null || name=$(hostname 2>/dev/null)
echo "hostname=$name"
command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled >/dev/null 2>&1 && echo selinux=1
[ -x __MGRCTL__ ] && echo "panel_version=$(__CORE__ ispmgr -V 2>/dev/null)"
__LISTENING__
for entry in /var/lib/dpkg/updates/* /var/lib/dpkg/updates/.[!.]* /var/lib/dpkg/updates/..?*; do
  [ -e "$entry" ] && { echo dpkg_interrupted=1; break; }
done
# reach URL: err= empty when the server answers below 500 (a 403/404 on a directory listing is
# still a live repository); only no answer or a server error is an error.
reach() {
  err=
  if command -v curl >/dev/null; then
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$1" 2>/dev/null)
    if [ "${code:-000}" = 000 ] || [ "$code" -ge 500 ]; then err="HTTP ${code:-000}"; fi
  elif command -v python3 >/dev/null; then err=$(python3 -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=10).read(1)
except urllib.error.HTTPError as e:
    if e.code >= 500: sys.exit(str(e))
except Exception as e: sys.exit(str(e))' "$1" 2>&1)
  else wget -q -T 10 -t 1 -O /dev/null "$1" 2>/dev/null; rc=$?
    # wget: 0 fetched, 8 the server answered with an error status; anything else is no answer.
    if [ $rc != 0 ] && [ $rc != 8 ]; then err="wget exit $rc"; fi
  fi
  case "$err" in ?*) err=$(echo $err | tail -c 200);; esac
}
reach __REPO__
[ -z "$err" ] && echo repository=ok || echo "repository_error=$err"
# id -u: the effective uid, the second field of Uid: in the shell's own status
while read -r key real effective rest; do
  [ "$key" = Uid: ] && { echo "uid=$effective"; break; }
done < /proc/self/status
if command -v dpkg-query >/dev/null; then
  statuses=$(dpkg-query -W -f '${Package} ${Status}\n' lsb-release wget gpg 2>/dev/null)
  present=
  while read -r package status; do
    case "$status" in *"ok installed"*) present="$present $package ";; esac
  done <<ISPAGENT_DPKG
$statuses
ISPAGENT_DPKG
  missing=
  for package in lsb-release wget gpg; do
    case "$present" in *" $package "*) ;; *) missing="$missing $package";; esac
  done
  echo "helpers_missing=${missing# }"
  if [ -n "$missing" ]; then
    source=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
      grep -v '^[[:space:]]*#' | grep -o 'https\?://[^[:space:]]*' | head -n 1)
    echo "distribution_repository=$source"
    if [ -n "$source" ]; then reach "$source"; else err="no source"; fi
    [ -z "$err" ] && echo distribution=ok || echo "distribution_error=$err"
  fi
fi
"""


def gather_script(repository_url: str, *, full: bool = False, primary_ipv4: str | None = None) -> str:
    """The probe; `full` gathers every fact even on a host with a panel installed. `primary_ipv4`:
    the address PRIMARY_IPV4_PROBE gave moments ago, taken as it is instead of probing again."""
    ipv4 = PRIMARY_IPV4_PROBE if primary_ipv4 is None else f"ip4={command_line([primary_ipv4])}"
    script = (
        _GATHER.replace("__MEMORY__", MEMORY_KB_PROBE)
        .replace("__IPV4__", ipv4)
        .replace("__LISTENING__", LISTENING_SOCKETS)
        .replace("__MGRCTL__", MGRCTL)
        .replace("__CORE__", CORE)
        .replace("__DIR__", INSTALLER_DIR)
        .replace("__REPO__", command_line([repository_url]))
    )
    return "ISPAGENT_PROBE=full\n" + script if full else script


def license_info_read(text: str) -> dict[str, str] | None:
    """license.info from the gather script's output as the verify probe reads it: {} when mgrctl is
    absent or failed; None when the probe stopped before it would have asked."""
    lines = text.splitlines()
    rc = next((line[11:] for line in lines if line.startswith("license_rc=")), None)
    if rc is None:  # no mgrctl to ask, if the probe got past that point
        past = "mgr5=1" not in lines and any(line.startswith("primary_ipv4=") for line in lines)
        return {} if past else None
    if rc != "0":
        return {}
    return parse_key_values("\n".join(line[4:] for line in lines if line.startswith("lic.")))


def parse_host_facts(text: str) -> HostFacts:
    """HostFacts from the gather script's output."""
    values: dict[str, str] = {}
    license_lines = []
    lines = text.splitlines()
    for line in lines:
        if line.startswith("lic."):
            license_lines.append(line[4:])
            continue
        key, sep, value = line.partition("=")
        if sep and key != "listen":
            values[key] = value
    ports = {url_port(url) for url in listening_sockets(lines)}
    redhat = values.get("redhat_release") == "1"
    return HostFacts(
        os_id=values.get("os_id", ""),
        os_version=values.get("os_version", ""),
        os_codename=values.get("os_codename", ""),
        os_like=values.get("os_like", ""),
        redhat_release=redhat,
        arch=values.get("arch", ""),
        memory_mb=int(values.get("memory_kb") or 0) // 1024,
        disk_root_mb=_df_free(values.get("df_root", "")),
        disk_usr_local_mb=_df_free(values.get("df_usr_local", "")),
        hostname=values.get("hostname" if redhat else "hostname_f", ""),
        selinux_enabled=values.get("selinux") == "1",
        mgr5_present=values.get("mgr5") == "1",
        license_info=parse_key_values("\n".join(license_lines)),
        panel_version=values.get("panel_version") or None,
        old_panel=values.get("old_panel") == "1",
        ports_in_use=tuple(port for port in PANEL_PORTS if port in ports),
        primary_ipv4=values.get("primary_ipv4") or None,
        install_running=values.get("install_running") == "1",
        install_interrupted=values.get("install_interrupted") == "1",
        dpkg_interrupted=values.get("dpkg_interrupted") == "1",
        repository_reachable=True
        if values.get("repository") == "ok"
        else False
        if "repository_error" in values
        else None,
        repository_error=values.get("repository_error", ""),
        uid=int(values["uid"]) if values.get("uid", "").isdigit() else None,
        helpers_missing=tuple(values.get("helpers_missing", "").split()),
        distribution_repository=values.get("distribution_repository", ""),
        distribution_reachable=(
            True if values.get("distribution") == "ok" else False if "distribution_error" in values else None
        ),
        distribution_error=values.get("distribution_error", ""),
        complete=values.get("probe") != "short",
    )


def _df_free(line: str) -> int | None:
    fields = line.split()
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


@dataclass(frozen=True)
class Preflight:
    """What later steps (license, installer, verify) learn from preflight: `ctx.state.get(PREFLIGHT)`."""

    primary_ipv4: str | None
    installed: bool  # a working panel is there: not reinstalled, its license is adopted
    licid: str | None
    panel_name: str | None
    panel_version: str | None
    install_running: bool  # an install we started earlier still runs: the installer reattaches
    os_family: str
    os_label: str
    memory_mb: int
    hostname: str
    facts: HostFacts
    verdict: Verdict

    def to_report(self) -> dict[str, Any]:
        return {
            "ok": self.verdict.ok,
            "installed": self.installed,
            "licid": self.licid,
            "panel_name": self.panel_name,
            "os": self.os_label,
            # Not gathered on a host whose panel is installed (it is not judged): None, not 0 MB.
            "memory_mb": self.memory_mb if self.facts.complete else None,
            "hostname": self.hostname if self.facts.complete else None,
            "primary_ipv4": self.primary_ipv4,
            "problems": [asdict(problem) for problem in self.verdict.problems],
            "notes": list(self.verdict.notes),
        }


def preflight_of(facts: HostFacts, verdict: Verdict) -> Preflight:
    info = facts.license_info
    return Preflight(
        primary_ipv4=facts.primary_ipv4,
        installed=facts.installed,
        licid=info.get("licid") or None,
        panel_name=info.get("panel_name") or None,
        panel_version=facts.panel_version,
        install_running=facts.install_running,
        os_family=facts.family,
        os_label=facts.os_label,
        memory_mb=facts.memory_mb,
        hostname=facts.hostname,
        facts=facts,
        verdict=verdict,
    )


PREFLIGHT: StateKey[Preflight] = StateKey("preflight", "the preflight result (the preflight step)")
