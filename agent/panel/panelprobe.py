"""The panel probe: what the verify step checks (a port listening, license.info, files' digests),
asked in one round trip and answered with as few processes on the host as the answer needs.

Listening sockets are read from /proc/net/tcp{,6} by the shell itself (what `ss -ltn` reads), so
only mgrctl and one sha256sum for all files are started: two processes, where a check per round
trip (testinfra's socket, file and run) started a dozen and waited for each.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.panel.mgrctl import MGRCTL, parse_key_values
from agent.transport.quoting import command_line

DONE = "probe=done"  # the last line: a script cut short (sudo refused, a shell gone) is no answer

_SCRIPT = r"""
prefixed() { while IFS= read -r line; do printf '%s%s\n' "$1" "$line"; done; }
for table in /proc/net/tcp /proc/net/tcp6; do
  while read -r sl local remote st rest; do
    [ "$st" = 0A ] && case "${local##*:}" in __PORT__) echo "listen=$local";; esac
  done < $table 2>/dev/null
done
__LICENSE__
__SUMS__
echo __DONE__
"""

_LICENSE = r"""info=$(__LICENSE_INFO__ 2>/dev/null)
echo "license_rc=$?"
prefixed lic. <<ISPAGENT_LICENSE_INFO
$info
ISPAGENT_LICENSE_INFO"""

_SUMS = r"""sums=$(sha256sum -- __FILES__ 2>/dev/null)
prefixed sum. <<ISPAGENT_SUMS
$sums
ISPAGENT_SUMS"""


def panel_probe_script(port: int, files: Sequence[str], *, license_info: bool = True) -> str:
    """The shell program for `port` (the panel's ihttpd port) and the files to digest; without
    `license_info` when the caller already holds a current reading of it (one mgrctl less)."""
    sums = _SUMS.replace("__FILES__", command_line(files)) if files else ""
    license = (
        _LICENSE.replace("__LICENSE_INFO__", command_line([MGRCTL, "-m", "ispmgr", "license.info"]))
        if license_info
        else ""
    )
    return (
        _SCRIPT.replace("__PORT__", f"{port:04X}")
        .replace("__LICENSE__", license)
        .replace("__SUMS__", sums)
        .replace("__DONE__", DONE)
    )


@dataclass(frozen=True)
class PanelProbe:
    """The host's answer: sockets listening on the port, license.info (empty when mgrctl failed),
    and sha256sum's lines for the files it could read."""

    complete: bool
    listening: tuple[str, ...] = ()
    license_info: dict[str, str] = field(default_factory=dict)
    sum_lines: frozenset[str] = frozenset()

    def file_matches(self, path: str, sha256: str) -> bool:
        """The file exists and holds content of digest `sha256` (what `sha256sum` printed for it)."""
        return sum_line(path, sha256) in self.sum_lines


def parse_panel_probe(text: str) -> PanelProbe:
    listening, license_lines, sums = [], [], []
    license_rc = None
    for line in text.splitlines():
        if line.startswith("lic."):
            license_lines.append(line[4:])
        elif line.startswith("sum."):
            sums.append(line[4:])
        elif line.startswith("listen="):
            listening.append(socket_url(line[7:]))
        elif line.startswith("license_rc="):
            license_rc = line[11:]
    info = parse_key_values("\n".join(license_lines)) if license_rc == "0" else {}
    return PanelProbe(DONE in text.splitlines(), tuple(listening), info, frozenset(sums))


def sum_line(path: str, sha256: str) -> str:
    """sha256sum's line for `path`: a name holding a backslash or a line break is escaped and the
    line starts with a backslash (GNU coreutils)."""
    if "\\" in path or "\n" in path:
        return "\\" + f"{sha256}  " + path.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{sha256}  {path}"


def socket_url(local: str) -> str:
    """`tcp://ADDRESS:PORT` from /proc/net/tcp's `HEXADDR:HEXPORT` (each 32-bit word in host byte
    order: little-endian on the machines we serve)."""
    address, _, port = local.partition(":")
    try:
        words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
        shown = str(ipaddress.ip_address(b"".join(words)))
        number = int(port, 16)
    except ValueError:
        return f"tcp://{local}"
    return f"tcp://[{shown}]:{number}" if ":" in shown else f"tcp://{shown}:{number}"
