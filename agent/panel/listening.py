"""Which TCP sockets a host listens on, asked by the host shell in the probes (verify, preflight,
panel_service) and read back here.

`ss -Hltn state listening` asks the kernel over netlink for listening sockets only. Reading
/proc/net/tcp{,6} instead makes the kernel walk its whole table of established connections, every
bucket, on each file: a table sized by the machine's memory, not by its connections (262 144
buckets on a 24 GiB server, 6-8 ms of CPU per file, against 3 ms for the whole `ss` process). So the
probes start `ss` and read /proc only where `ss` is missing or too old for -H (iproute2 < 4.16).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_SS_BEGIN, _SS_END = "listen.ss", "listen.ss.done"

# Prints _SS_BEGIN, ss's own lines ("RECV-Q SEND-Q LOCAL PEER": one state asked, no state column)
# and _SS_END; or, without a working ss, one `listen=HEXADDR:HEXPORT` line per listening socket.
LISTENING_SOCKETS = rf"""echo {_SS_BEGIN}
if command -v ss >/dev/null 2>&1 && ss -Hltn state listening 2>/dev/null; then
  echo {_SS_END}
else
  for table in /proc/net/tcp /proc/net/tcp6; do
    while read -r sl local remote st rest; do [ "$st" = 0A ] && echo "listen=$local"; done < $table 2>/dev/null
  done
fi"""

# /proc/net/tcp{,6}: state 0A is LISTEN; the local port is the hex after the last colon.
_PORT_LISTENING = r"""listening() {
  if command -v ss >/dev/null 2>&1 && found=$(ss -Hltn state listening "sport = :__PORT__" 2>/dev/null); then
    [ -n "$found" ]; return
  fi
  for table in /proc/net/tcp /proc/net/tcp6; do [ -r $table ] || continue
    while read -r sl local remote st rest; do
      [ "$st" = 0A ] && [ "${local##*:}" = __HEX__ ] && return 0
    done < $table
  done
  return 1
}
"""


def port_listening_function(port: int) -> str:
    """A shell function `listening` that returns 0 when something listens on TCP `port`."""
    return _PORT_LISTENING.replace("__PORT__", str(port)).replace("__HEX__", f"{port:04X}")


def listening_sockets(lines: Iterable[str]) -> tuple[str, ...]:
    """`tcp://ADDRESS:PORT` of each listening socket in LISTENING_SOCKETS' output (other lines are
    passed over). ss's lines count only when ss ended well; else the /proc lines."""
    from_ss: list[str] = []
    from_proc: list[str] = []
    inside = done = False
    for line in lines:
        if line == _SS_BEGIN:
            inside, from_ss = True, []
        elif line == _SS_END:
            inside, done = False, True
        elif line.startswith("listen="):
            inside = False
            from_proc.append(proc_socket_url(line[7:]))
        elif inside and line.strip():
            from_ss.append(ss_socket_url(line))
    return tuple(from_ss) if done else tuple(from_proc)


def ss_socket_url(line: str) -> str:
    """`tcp://ADDRESS:PORT` from a line of `ss -Hltn state listening`: its local column, such as
    `0.0.0.0:1500`, `[::]:22`, `*:22` (IPv6 any, dual stack) or `127.0.0.1%lo:53`."""
    fields = line.split()
    local = fields[2] if len(fields) >= 4 else line.strip()
    host, _, port = local.rpartition(":")
    host = host.partition("%")[0].strip("[]")
    try:
        shown = str(ipaddress.ip_address("::" if host == "*" else host))
        number = int(port)
    except ValueError:
        return f"tcp://{local}"
    return _url(shown, number)


def proc_socket_url(local: str) -> str:
    """`tcp://ADDRESS:PORT` from /proc/net/tcp's `HEXADDR:HEXPORT` (each 32-bit word in host byte
    order: little-endian on the machines we serve)."""
    address, _, port = local.partition(":")
    try:
        words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
        shown = str(ipaddress.ip_address(b"".join(words)))
        number = int(port, 16)
    except ValueError:
        return f"tcp://{local}"
    return _url(shown, number)


def url_port(url: str) -> int | None:
    """The port of a `tcp://ADDRESS:PORT` URL, None if it has none."""
    port = url.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def _url(address: str, port: int) -> str:
    return f"tcp://[{address}]:{port}" if ":" in address else f"tcp://{address}:{port}"
