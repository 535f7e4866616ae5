"""The panel probe: what the verify step checks (a port listening, license.info, files' digests),
asked in one round trip and answered with as few processes on the host as the answer needs.

Listening sockets come from one `ss` (agent/panel/listening.py says why not /proc/net/tcp), then
mgrctl and one sha256sum for all files: three processes, where a check per round trip (testinfra's
socket, file and run) started a dozen and waited for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.panel.listening import LISTENING_SOCKETS, listening_sockets
from agent.panel.mgrctl import MGRCTL, parse_key_values
from agent.transport.quoting import command_line

DONE = "probe=done"  # the last line: a script cut short (sudo refused, a shell gone) is no answer

_SCRIPT = r"""
prefixed() { while IFS= read -r line; do printf '%s%s\n' "$1" "$line"; done; }
__LISTENING__
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


def panel_probe_script(files: Sequence[str], *, license_info: bool = True) -> str:
    """The shell program: listening sockets, license.info and the digests of `files`; without
    `license_info` when the caller already holds a current reading of it (one mgrctl less)."""
    sums = _SUMS.replace("__FILES__", command_line(files)) if files else ""
    license = (
        _LICENSE.replace("__LICENSE_INFO__", command_line([MGRCTL, "-m", "ispmgr", "license.info"]))
        if license_info
        else ""
    )
    return (
        _SCRIPT.replace("__LISTENING__", LISTENING_SOCKETS)
        .replace("__LICENSE__", license)
        .replace("__SUMS__", sums)
        .replace("__DONE__", DONE)
    )


@dataclass(frozen=True)
class PanelProbe:
    """The host's answer: listening sockets, license.info (empty when mgrctl failed),
    and sha256sum's lines for the files it could read."""

    complete: bool
    listening: tuple[str, ...] = ()
    license_info: dict[str, str] = field(default_factory=dict)
    sum_lines: frozenset[str] = frozenset()

    def file_matches(self, path: str, sha256: str) -> bool:
        """The file exists and holds content of digest `sha256` (what `sha256sum` printed for it)."""
        return sum_line(path, sha256) in self.sum_lines


def parse_panel_probe(text: str) -> PanelProbe:
    license_lines, sums = [], []
    license_rc = None
    lines = text.splitlines()
    for line in lines:
        if line.startswith("lic."):
            license_lines.append(line[4:])
        elif line.startswith("sum."):
            sums.append(line[4:])
        elif line.startswith("license_rc="):
            license_rc = line[11:]
    info = parse_key_values("\n".join(license_lines)) if license_rc == "0" else {}
    return PanelProbe(DONE in lines, listening_sockets(lines), info, frozenset(sums))


def sum_line(path: str, sha256: str) -> str:
    """sha256sum's line for `path`: a name holding a backslash or a line break is escaped and the
    line starts with a backslash (GNU coreutils)."""
    if "\\" in path or "\n" in path:
        return "\\" + f"{sha256}  " + path.replace("\\", "\\\\").replace("\n", "\\n")
    return f"{sha256}  {path}"
