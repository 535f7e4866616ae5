"""The emulator's HTTP side: a threaded server, requests read strictly, the API and admin paths.

Every connection has its own thread and a read timeout; the listen backlog is large; a malformed
request gets an HTTP error (400, 408, 411, 413) rather than a traceback. Requests as the public
clients send them (facts §8): GET query strings (also unencoded), POST form-urlencoded (with or
without a Content-Type), multipart/form-data, chunked bodies; HTTP/1.0 and 1.1 (keep-alive);
`/billmgr` and `/manager/billmgr`.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import secrets
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from agent.lab.partner import api
from agent.lab.partner.faults import Refusal
from agent.lab.partner.rendering import Document, render
from agent.lab.partner.rules import ApiError, check_values
from agent.partner.operations import identify

if TYPE_CHECKING:
    from agent.lab.partner.emulator import PartnerEmulator

API_PATHS = ("/billmgr", "/manager/billmgr")
READ_TIMEOUT = 10.0  # seconds a connection may stay silent (before its request, or between requests)
# Seconds from a request's first byte to the end of its head (request line and headers): a client
# trickling a byte now and then never trips the read timeout and would hold its thread forever.
HEAD_DEADLINE = 10.0
LISTEN_BACKLOG = 1024
MAX_BODY = 2 * 1024 * 1024  # bytes; a longer request gets 413 before its body is read
MAX_FIELDS = 200
TEXT = "text/plain; charset=utf-8"


class BadRequest(Exception):
    """A request the HTTP layer refuses before the API sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HeadTooSlow(Exception):
    """The request's head did not arrive within its deadline (not a TimeoutError: the standard
    handler would swallow that and close without an answer)."""


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes. Each read waits at most the idle timeout; while a request's head is
    read, the head must also be complete within `head_seconds` of its first byte."""

    def __init__(self, connection: socket.socket, idle_timeout: float | None, head_seconds: float) -> None:
        self.connection, self.idle_timeout, self.head_seconds = connection, idle_timeout, head_seconds
        self._in_head = False
        self._head_began: float | None = None

    def readable(self) -> bool:
        return True

    def start_head(self) -> None:
        self._in_head, self._head_began = True, None

    def end_head(self) -> None:
        self._in_head = False

    def readinto(self, buffer) -> int:
        timeout = self._timeout()
        self.connection.settimeout(timeout)
        try:
            count = self.connection.recv_into(buffer)
        except TimeoutError:
            if timeout != self.idle_timeout:  # the head's deadline, not the idle timeout, ran out
                raise _HeadTooSlow() from None
            raise
        finally:
            self.connection.settimeout(self.idle_timeout)  # writes get the ordinary timeout
        if self._in_head and self._head_began is None and count:
            self._head_began = time.monotonic()
        return count

    def _timeout(self) -> float | None:
        if not self._in_head or self._head_began is None:
            return self.idle_timeout
        left = self._head_began + self.head_seconds - time.monotonic()
        if left <= 0:
            raise _HeadTooSlow()
        return left if self.idle_timeout is None else min(left, self.idle_timeout)


class Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 resets bursts of connections
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (a killed agent, its own timeout): nothing to report
        print(
            f"partner emulator: request from {client_address[0]} failed: {type(error).__name__}: {error}",
            file=sys.stderr,
            flush=True,
        )


def handler_for(emulator: PartnerEmulator, read_timeout: float, head_seconds: float) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.emulator = emulator
    Handler.timeout = read_timeout
    Handler.head_seconds = head_seconds
    return Handler


class _Handler(BaseHTTPRequestHandler):
    emulator: PartnerEmulator
    head_seconds: float
    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections; HTTP/1.0 ones get one call each
    # Headers and body go out in two writes: without TCP_NODELAY a kept-alive connection waits for
    # the client's delayed ACK (40 ms) before the body leaves.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain socket file; ours keeps the head's deadline
        self._reader = _DeadlineReader(self.connection, self.timeout, self.head_seconds)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.start_head()
        try:
            super().handle_one_request()
        except _HeadTooSlow:
            # Cut before its request line was parsed, the request has none of what an answer needs.
            self.requestline = getattr(self, "requestline", "")
            self.request_version = getattr(self, "request_version", "HTTP/1.1")
            self._refuse(BadRequest(408, f"Request Timeout: the request's head took more than {self.head_seconds:g} s"))

    def log_message(self, format: str, *args: Any) -> None:  # query strings carry authinfo: log nothing
        pass

    def do_GET(self) -> None:
        self._serve(with_body=False)

    def do_POST(self) -> None:
        self._serve(with_body=True)

    def _serve(self, with_body: bool) -> None:
        self._reader.end_head()
        try:
            body = self._read_body() if with_body else b""
            url = urlsplit(self.path)
            params = _params(url.query, body, self.headers.get("Content-Type", ""))
        except BadRequest as refused:
            return self._refuse(refused)
        except TimeoutError:  # the body stalled: say so, as a strict server does, and free the thread
            return self._refuse(BadRequest(408, f"Request Timeout: the body stalled for {self.timeout:g} s"))
        except OSError:
            self.close_connection = True  # the client went away: nobody to answer
            return
        try:
            self._dispatch(url.path, params, body)
        except Exception as error:  # a bug here must not cost the client its answer, nor the server a thread
            print(
                f"partner emulator: {self.command} {url.path}: {type(error).__name__}: {error}",
                file=sys.stderr,
                flush=True,
            )
            self.close_connection = True
            self._send(500, TEXT, b"internal error\n")

    def _refuse(self, refused: BadRequest) -> None:
        self.emulator.count(self.emulator.refused, refused.status)
        self.close_connection = True
        try:
            self._send(refused.status, TEXT, f"{refused}\n".encode())
        except OSError:
            return
        self._linger()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = _content_length(self.headers.get_all("Content-Length") or [])
        if length is None:
            if self.request_version == "HTTP/1.0":  # the body ends with the connection
                body = self.rfile.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
                return body
            raise BadRequest(411, "Length Required: send Content-Length (or a chunked body)")
        if length > MAX_BODY:
            raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise BadRequest(400, "Bad Request: the body is shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(400, "Bad Request: malformed chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise BadRequest(413, f"Request Entity Too Large: at most {MAX_BODY} bytes")
            body += self.rfile.read(size)
            self.rfile.readline(1024)

    def _dispatch(self, path: str, params: dict[str, str], body: bytes) -> None:
        if path in API_PATHS:
            self._api(params)
        elif path == "/licctl/fetch":
            status, reply = api.fetch(self.emulator.store, params.get("key", ""), self.client_address[0])
            self._send(status, "application/json", json.dumps(reply).encode())
        elif path.startswith("/admin/"):
            self._admin(path.removeprefix("/admin/"), params, body)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _api(self, params: dict[str, str]) -> None:
        emulator = self.emulator
        func = params.get("func", "")[:64]
        emulator.count(emulator.calls, func)
        faults = emulator.faults()
        refusal = faults.before_call(func)
        if refusal is not None:
            emulator.count(emulator.injected, refusal.value)
            return self._refused_by_fault(refusal, faults.retry_after)
        operation = identify(params)
        if not emulator.admits(operation, params):
            return self._reset()  # an extension refused it unprocessed
        try:
            check_values(params)
            account = emulator.authenticate(params)
            document = api.answer(operation, api.Call(emulator.store, account, params, faults.key_delay))
        except ApiError as error:
            document = Document(error=error)
        if document.error is None and (faults.drops_answer(func) or emulator.loses_answer(operation, params)):
            emulator.count(emulator.injected, f"drop {func}")
            return self._reset()  # committed, and the answer is lost
        self._send(200, *render(document, params.get("out", "xml")))

    def _refused_by_fault(self, refusal: Refusal, retry_after: int) -> None:
        if refusal is Refusal.RESET:
            return self._reset()
        if refusal is Refusal.RATE_LIMIT:
            return self._send(429, "text/plain", b"Too Many Requests\n", {"Retry-After": str(retry_after)})
        self._send(503, "text/html", b"<html><body>503 Service Temporarily Unavailable</body></html>")

    def _admin(self, name: str, params: dict[str, str], body: bytes) -> None:
        """`/admin/NAME` (X-Admin-Token from STATE_DIR/admin-token): the emulator's routes (faults) and
        its extensions'; a JSON body in, JSON out."""
        emulator = self.emulator
        if not secrets.compare_digest(self.headers.get("X-Admin-Token", "").encode(), emulator.admin_token.encode()):
            return self._send(403, "application/json", b'{"error": "admin token required"}')
        try:
            data = json.loads(body or b"{}") if self.command == "POST" else {}
        except ValueError:
            return self._send(400, "application/json", b'{"error": "the body is not JSON"}')
        route = emulator.admin_routes().get(name)
        if route is None:
            return self._send(404, "application/json", b'{"error": "unknown admin operation"}')
        self._send(200, "application/json", json.dumps(route(params, data)).encode())

    def _send(self, status: int, content_type: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _linger(self, seconds: float = 2.0) -> None:
        """After refusing a request whose body was not read, let the client read the answer: stop
        writing, then read and drop what it still sends until it stops or `seconds` pass (what
        web servers call a lingering close). Closed with its bytes unread, the socket would reset
        the connection, and a client still sending 2 MB would get a broken pipe, not the 413."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _reset(self) -> None:
        """Close with RST: the client sees 'connection reset by peer' and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self.wfile = _Discard()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


def _params(query: str, body: bytes, content_type: str) -> dict[str, str]:
    """The call's parameters: the query string, then the body (multipart, or urlencoded with or
    without its Content-Type header); the body wins where both name a parameter."""
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS))
        if content_type.lower().startswith("multipart/form-data"):
            params.update(_multipart(body, content_type))
        elif body:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError as error:
        raise BadRequest(400, f"Bad Request: {error}") from None
    return params


def _multipart(body: bytes, content_type: str) -> dict[str, str]:
    if "boundary=" not in content_type:
        raise BadRequest(400, "Bad Request: multipart/form-data without a boundary")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BadRequest(400, "Bad Request: unreadable multipart/form-data body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if len(fields) >= MAX_FIELDS:
            raise BadRequest(400, f"Bad Request: more than {MAX_FIELDS} fields")
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        fields[str(name)] = payload.decode(charset, "replace")
    return fields


class _Discard:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _content_length(values: list[str]) -> int | None:
    """The body's length from every Content-Length header (None: none). Repeated or listed values
    must agree (RFC 9110 §8.6): a proxy and this server reading different lengths is how requests
    are smuggled, so conflicting ones are a 400, as a strict server answers."""
    lengths = {part.strip() for value in values for part in value.split(",")}
    if not lengths:
        return None
    if len(lengths) > 1:
        shown = ", ".join(sorted(length[:20] for length in lengths))[:80]
        raise BadRequest(400, f"Bad Request: conflicting Content-Length values ({shown})")
    length = lengths.pop()
    if not length.isdigit():
        raise BadRequest(400, f"Bad Request: Content-Length {length[:40]!r} is not a number")
    return int(length)
