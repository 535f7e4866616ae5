"""TCP connections to hosts: a run's first ones dialed before paramiko is imported, the rest on demand.

A host's sshd does a good part of its work for a new connection before it answers: it forks,
re-executes itself, reads its configuration and host keys, and only then sends its banner. That
cost 6 ms of CPU per connection on the lab (50 connections: 0.3 s of CPU, 0.16 s of both cores).
Dialed once every check that refuses a run before any host has passed, that work overlaps the rest
of the run's start (importing paramiko, opening the journal, starting the workers) instead of
following it, on a core that would otherwise wait: the 50-host race took 0.989x the time it took
before (median of 40 paired rounds; docs/performance.md, eleventh round).

A few at a time, though, until the workers begin: each next dial once an earlier host has answered
(its banner) or a moment has passed. Forty-eight sshds starting at once on the machine the run starts
on (the lab, containers or VMs beside the control node) took both cores from the run for 0.15 s:
its own start, which the handshakes wait for, got a fiftieth of the CPU, and the hosts then stood
idle while it finished. A few at a time leave the run a core (docs/performance.md, fifteenth round).
Remote hosts answer in a round trip, so their dials follow each other about as fast as before.

Only endpoints reached by TCP from here and written as IP addresses are dialed: a name would be
resolved here, one at a time, and a host behind a bastion or a ProxyCommand has no socket of its
own. This module imports no paramiko; agent.transport.ssh takes the sockets.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
from collections.abc import Iterable

from agent.inventory.model import Endpoint

# Handshakes in flight at once, whatever --forks says. A thousand threads opening connections
# together make every handshake slow (key exchange is CPU on both ends; here both ends share the
# machine) until connect and banner timeouts call hosts unreachable that are not: with --forks 500
# over 1000 lab hosts, 287 were. Waiting for a slot does not count against connect_timeout. No more
# hosts than this are dialed ahead: those beyond it would wait for a slot, and a server drops a
# connection left without a handshake for long (sshd's LoginGraceTime).
MAX_HANDSHAKES = 48
# Dials ahead not answered yet, at most: twice the cores, so the hosts' sshds on a shared machine keep
# one busy and the run the other; a remote host's answer frees its place within a round trip.
DIALS_IN_FLIGHT = 2 * (os.cpu_count() or 1)
# How long a dial may go unanswered before the next is made anyway (a host that drops SYNs).
ANSWER_WAIT_S = 0.1


class DialedSockets:
    """Non-blocking TCP connects made ahead, a few at a time; each host's handshake takes its socket
    when it begins, and the first to begin has the rest dialed at once."""

    def __init__(self, endpoints: Iterable[Endpoint], in_flight: int = DIALS_IN_FLIGHT) -> None:
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._to_dial: dict[tuple[str, int], Endpoint] = {}
        for endpoint in endpoints:
            if endpoint.via is None and endpoint.proxy_command is None:
                self._to_dial.setdefault((endpoint.address, endpoint.port), endpoint)
        self._lock = threading.Lock()  # the two dicts: the pacing thread and the handshakes share them
        self._in_flight = max(1, in_flight)
        if self._to_dial:
            threading.Thread(target=self._dial_paced, name="dialing ahead", daemon=True).start()

    def __len__(self) -> int:
        """The hosts dialed ahead or still to be."""
        with self._lock:
            return len(self._sockets) + len(self._to_dial)

    def _dial_paced(self) -> None:
        unanswered: dict[int, socket.socket] = {}
        answers = select.poll()
        while True:
            with self._lock:
                while self._to_dial and len(unanswered) < self._in_flight:
                    sock = self._dial_next()
                    if sock is not None:
                        unanswered[sock.fileno()] = sock
                        answers.register(sock, select.POLLIN)
                if not self._to_dial:
                    return  # all dialed, or the rest taken over by a handshake or close()
            answered = [descriptor for descriptor, _ in answers.poll(ANSWER_WAIT_S * 1000)]
            for descriptor in answered or [next(iter(unanswered))]:  # none in time: the oldest gives way
                answers.unregister(descriptor)
                del unanswered[descriptor]

    def _dial_next(self) -> socket.socket | None:
        key = next(iter(self._to_dial))  # in the run's order: the first hosts' handshakes begin first
        sock = _dial(self._to_dial.pop(key))
        if sock is not None:
            self._sockets[key] = sock
        return sock

    def take(self, endpoint: Endpoint, timeout: float) -> socket.socket | None:
        """The connected socket dialed to `endpoint`, None if it was not dialed.

        Raises what `socket.create_connection` would (ConnectionRefusedError, TimeoutError...) when
        the dialed connect failed or did not finish within `timeout`: it counts as a connection
        attempt, so an unreachable host is not waited for twice.
        """
        with self._lock:
            while self._to_dial:  # the workers have begun: no more waiting for answers
                self._dial_next()
            sock = self._sockets.pop((endpoint.address, endpoint.port), None)
        if sock is None:
            return None
        try:
            # poll(), not select(): a process holding more than 1024 descriptors (a large --forks, a
            # program embedding ispagent) gets sockets above select()'s limit.
            waiting = select.poll()
            waiting.register(sock, select.POLLOUT)
            if not waiting.poll(timeout * 1000):
                raise TimeoutError("timed out")
            failure = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failure:
                raise OSError(failure, os.strerror(failure))  # ConnectionRefusedError and the like
            sock.settimeout(timeout)  # blocking again, with the deadline create_connection would set
            return sock
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        """Close the sockets no handshake took (hosts the run did not reach: an abort, an interrupt)."""
        with self._lock:
            self._to_dial.clear()
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()


def _dial(endpoint: Endpoint) -> socket.socket | None:
    """A socket whose connect to `endpoint` is under way, or None (a name, or a connect that failed at once)."""
    try:
        # AI_NUMERICHOST: an address is parsed, a name is refused here rather than looked up.
        family, kind, proto, _, address = socket.getaddrinfo(
            endpoint.address, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
    except (OSError, UnicodeError):
        return None
    sock = socket.socket(family, kind, proto)
    try:
        _without_nagle(sock)
        sock.setblocking(False)
        if sock.connect_ex(address) in (0, errno.EINPROGRESS):
            return sock
    except OSError:
        pass
    sock.close()  # the handshake dials again and reports the failure as it always did
    return None


def tcp_connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    """A TCP connection to `endpoint` opened now, for a host that was not dialed ahead."""
    sock = socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    _without_nagle(sock)
    return sock


def _without_nagle(sock: socket.socket) -> None:
    # Without TCP_NODELAY every command waits out a delayed ACK: 48 ms instead of 3 ms per
    # command on the lab (paramiko leaves Nagle on).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
