"""The host probe: one shell program that says what a server is and what it holds, and what it means.

The preflight step runs it before any license is paid for; `Preflight` is what later steps (license,
installer, verify, configure's templates) read of it, under the state key PREFLIGHT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.hoststate import StateKey
from agent.installer.state import INSTALLER_DIR
from agent.panel.mgrctl import CORE, MGRCTL, parse_key_values
from agent.panel.preflight_rules import PANEL_PORTS, HostFacts, Verdict
from agent.transport.quoting import command_line

# Shell probes shared with the facts step: builtins where they can be (forks on the host are what
# a probe costs at fleet scale).
MEMORY_KB_PROBE = ('while read -r key value unit; do [ "$key" = MemTotal: ] && memory_kb=$value && break; '
                   'done < /proc/meminfo')
PRIMARY_IPV4_PROBE = r"""set -- $(ip -4 -o route get 1.1.1.1 2>/dev/null)
while [ $# -gt 1 ] && [ "$1" != src ]; do shift; done
ip4=${2:-}
[ -n "$ip4" ] || { set -- $(hostname -I 2>/dev/null); ip4=${1:-}; }"""

# One round trip: every fact as a `key=value` line (license.info lines prefixed `lic.`).
_GATHER = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-}"; echo "os_version=${VERSION_ID:-}"; echo "os_codename=${VERSION_CODENAME:-}"
echo "os_like=${ID_LIKE:-}"
[ -f /etc/redhat-release ] && echo redhat_release=1
echo "arch=$(uname -m)"
__MEMORY__
echo "memory_kb=${memory_kb:-}"
echo "df_root=$(df -Pm / 2>/dev/null | tail -n 1)"
echo "df_usr_local=$(df -Pm /usr/local 2>/dev/null | tail -n 1)"
echo "hostname_f=$(hostname -f 2>/dev/null)"
echo "hostname=$(hostname 2>/dev/null)"
selinuxenabled >/dev/null 2>&1 && echo selinux=1
[ -d /usr/local/ispmgr ] && echo old_panel=1
if [ -x __MGRCTL__ ]; then
  echo mgr5=1
  __MGRCTL__ -m ispmgr license.info 2>/dev/null | sed 's/^/lic./'
  echo "panel_version=$(__CORE__ ispmgr -V 2>/dev/null)"
fi
for table in /proc/net/tcp /proc/net/tcp6; do
  while read -r sl local remote st rest; do
    case "$st:${local##*:}" in 0A:0050) echo port=80;; 0A:01BB) echo port=443;; 0A:05DC) echo port=1500;; esac
  done < $table 2>/dev/null
done
__IPV4__
echo "primary_ipv4=$ip4"
pid=$(cat __DIR__/install.pid 2>/dev/null)
if [ -n "$pid" ] && [ ! -e __DIR__/install.rc ]; then
  install=interrupted
  if [ -r /proc/$pid/cmdline ]; then
    case "$(tr '\0' ' ' < /proc/$pid/cmdline)" in *ispagent-install*) install=running;; esac
  fi
  echo "install_$install=1"
fi
[ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] && echo dpkg_interrupted=1
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
  err=$(echo $err | tail -c 200)
}
reach __REPO__
[ -z "$err" ] && echo repository=ok || echo "repository_error=$err"
echo "uid=$(id -u)"
if command -v dpkg-query >/dev/null; then
  missing=
  for package in lsb-release wget gpg; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing="$missing $package"
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


def gather_script(repository_url: str) -> str:
    return (
        _GATHER.replace("__MEMORY__", MEMORY_KB_PROBE).replace("__IPV4__", PRIMARY_IPV4_PROBE)
        .replace("__MGRCTL__", MGRCTL).replace("__CORE__", CORE)
        .replace("__DIR__", INSTALLER_DIR).replace("__REPO__", command_line([repository_url]))
    )


def parse_host_facts(text: str) -> HostFacts:
    """HostFacts from the gather script's output."""
    values: dict[str, str] = {}
    license_lines = []
    ports: list[int] = []
    for line in text.splitlines():
        if line.startswith("lic."):
            license_lines.append(line[4:])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "port":
            ports.append(int(value))
        else:
            values[key] = value
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
        ports_in_use=tuple(sorted(set(p for p in ports if p in PANEL_PORTS))),
        primary_ipv4=values.get("primary_ipv4") or None,
        install_running=values.get("install_running") == "1",
        install_interrupted=values.get("install_interrupted") == "1",
        dpkg_interrupted=values.get("dpkg_interrupted") == "1",
        repository_reachable=True if values.get("repository") == "ok" else False if "repository_error" in values else None,
        repository_error=values.get("repository_error", ""),
        uid=int(values["uid"]) if values.get("uid", "").isdigit() else None,
        helpers_missing=tuple(values.get("helpers_missing", "").split()),
        distribution_repository=values.get("distribution_repository", ""),
        distribution_reachable=(True if values.get("distribution") == "ok"
                                else False if "distribution_error" in values else None),
        distribution_error=values.get("distribution_error", ""),
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
            "memory_mb": self.memory_mb,
            "hostname": self.hostname,
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
