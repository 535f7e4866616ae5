"""The partner emulator against the public clients of the real API, under load, and against bad requests.

tests/data/partner/clients.yaml replays each real client's request style (method, path, HTTP
version, encoding, output format) and checks the reply paths that client reads. Requests are built
by hand on raw sockets, so each style is exactly what that client sends.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
import yaml

from agent.lab.partner import TARIFFS, PartnerEmulator
from agent.lab.partner.server import LISTEN_BACKLOG, MAX_BODY

CLIENTS = yaml.safe_load((Path(__file__).parents[1] / "data" / "partner" / "clients.yaml").read_text())


@pytest.fixture
def emulator(tmp_path):
    emulator = PartnerEmulator(tmp_path / "partner", read_timeout=1.0).start()
    yield emulator
    emulator.stop()


def authinfo(emulator) -> str:
    return emulator.credentials_file.read_text().strip()


# -- a raw HTTP client that can speak every style ---------------------------------------------------


def build_request(style: dict, params: dict[str, str], host: str) -> bytes:
    """The bytes a client of `style` sends for `params`."""
    method, path, version = style["method"], style["path"], f"HTTP/{style['http']}"
    headers, body = [f"Host: {host}"], b""
    encoding = style["encoding"]
    if encoding == "query":
        path += "?" + urlencode(params)
    elif encoding == "query-raw":  # concatenated by hand, as HostBill builds its URLs
        path += "?" + "&".join(f"{key}={value}" for key, value in params.items())
    elif encoding in ("form", "form-bare"):
        body = urlencode(params).encode()
        if encoding == "form":
            headers.append("Content-Type: application/x-www-form-urlencoded")
    elif encoding == "multipart":  # as curl -F sends it
        boundary = "------------------------ispagent0123456789"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            for key, value in params.items()
        ]
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        headers.append(f"Content-Type: multipart/form-data; boundary={boundary}")
    if method == "POST":
        headers.append(f"Content-Length: {len(body)}")
    if version == "HTTP/1.1":
        headers.append("Connection: close")
    return f"{method} {path} {version}\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode() + body


def exchange(address: tuple[str, int], data: bytes, timeout: float = 10, half_close: bool = False) -> tuple[int, bytes]:
    """Send `data`, read until the server closes; (status, body). Status 0: no answer at all."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    raw = b"".join(chunks)
    if not raw:
        return 0, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def call(emulator, style: dict, params: dict[str, str]) -> tuple[int, bytes]:
    host, port = emulator.server.server_address[:2]
    return exchange((host, port), build_request(style, params, f"{host}:{port}"))


# -- reading a reply the way each client does -------------------------------------------------------


def read_paths(body: bytes, output: str, path: str) -> list[str]:
    """The values at `path` in the reply ([] when absent)."""
    if output == "xml":
        return _xml_values(ET.fromstring(body), path.split("/"))
    if output == "text":
        values = []
        for line in body.decode().splitlines():
            if line.startswith("ERROR "):
                key, value = "ERROR", line[len("ERROR ") :]
            else:
                key, _, value = line.partition("=")
            if key == path:
                values.append(value)
        return values
    return _json_values(json.loads(body), path.split("/"))


def _xml_values(element: ET.Element, steps: list[str]) -> list[str]:
    if element.tag != steps[0].removesuffix("[*]"):
        return []
    if len(steps) == 1:
        return [element.text or ""]
    step = steps[1]
    if step.startswith("@"):
        return [element.get(step[1:])] if element.get(step[1:]) is not None else []
    children = [child for child in element if child.tag == step.removesuffix("[*]")]
    if not step.endswith("[*]"):
        children = children[:1]
    return [value for child in children for value in _xml_values(child, steps[1:])]


def _json_values(value, steps: list[str]) -> list[str]:
    if not steps:
        return [value if isinstance(value, str) else json.dumps(value)]
    step, rest = steps[0], steps[1:]
    if not isinstance(value, dict) or step.removesuffix("[*]") not in value:
        return []
    found = value[step.removesuffix("[*]")]
    items = found if step.endswith("[*]") and isinstance(found, list) else [found]
    return [item for element in items for item in _json_values(element, rest)]


def fill(text: str, saved: dict[str, str]) -> str:
    for name, value in saved.items():
        text = text.replace("{" + name + "}", value)
    return text


@pytest.mark.parametrize("client", CLIENTS, ids=[client["client"].split(" (")[0] for client in CLIENTS])
def test_each_real_client_gets_the_reply_paths_it_reads(emulator, client):
    saved: dict[str, str] = {}
    for number, step in enumerate(client["calls"], 1):
        if "fetch" in step:
            base = emulator.url.replace("/billmgr", "/licctl/fetch")
            urllib.request.urlopen(f"{base}?licname=ispmgr&key={quote(fill(step['fetch'], saved))}", timeout=10).read()
        params = {**client["common"], **{key: fill(str(value), saved) for key, value in step["params"].items()}}
        params["authinfo"] = step.get("authinfo", authinfo(emulator))
        style = step.get("style", client["style"])
        status, body = call(emulator, style, params)
        where = f"call {number} ({params['func']}): HTTP {status}\n{body.decode(errors='replace')}"
        assert status == 200 and body.strip(), where  # errors come with HTTP 200, in the body
        output = params["out"]
        for path, expected in step.get("reads", {}).items():
            values = read_paths(body, output, path)
            assert values, f"{path} missing\n{where}"
            text = ",".join(values)
            if isinstance(expected, dict):
                assert re.search(fill(expected["re"], saved), text), f"{path} = {text!r}\n{where}"
            else:
                assert text == fill(str(expected), saved), f"{path} = {text!r}\n{where}"
        for path in step.get("absent", []):
            assert read_paths(body, output, path) == [], f"{path} present\n{where}"
        for name, path in step.get("save", {}).items():
            saved[name] = read_paths(body, output, path)[0]


def test_every_client_style_authenticates(emulator):
    """A style whose body the server cannot read loses its authinfo: the reply is an auth error."""
    styles = {client["client"]: client["style"] for client in CLIENTS}
    styles["plain GET query"] = {"method": "GET", "path": "/billmgr", "http": "1.1", "encoding": "query"}
    for name, style in styles.items():
        status, body = call(emulator, style, {"func": "soft", "out": "xml", "authinfo": authinfo(emulator)})
        assert status == 200 and b"<error" not in body, (name, body)


# -- load ------------------------------------------------------------------------------------------


def test_200_concurrent_calls_all_answered_no_duplicate_and_exact_balance(emulator):
    """100 orders and 100 reads, every connection opened at the same moment (the backlog must hold them)."""
    before = emulator.store.account("lab-partner@example.com")["balance_cents"]
    style = {"method": "POST", "path": "/billmgr", "http": "1.1", "encoding": "form"}
    host, port = emulator.server.server_address[:2]
    requests = []
    for index in range(200):
        if index % 2:
            params = {"func": "soft", "out": "bjson"}
        else:
            params = {
                "func": "soft.order.param",
                "pricelist": "55227",
                "period": "1",
                "ip": f"198.51.100.{index // 2}",
                "licname": f"c{index}",
                "sok": "ok",
                "skipbasket": "on",
                "clicked_button": "finish",
                "out": "bjson",
            }
        requests.append(build_request(style, {**params, "authinfo": authinfo(emulator)}, f"{host}:{port}"))
    start = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = exchange((host, port), requests[index], timeout=30)
        except OSError as error:
            results[index] = (0, repr(error).encode())

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [(index, status, body[:80]) for index, (status, body) in enumerate(results) if status != 200]
    assert failed == [], f"{len(failed)} of 200 not answered: {failed[:5]}"
    ids = [json.loads(body)["id"]["v"] for status, body in results[0::2]]
    assert len(set(ids)) == 100
    licenses = emulator.store.licenses()
    assert len(licenses) == 100 and sorted(str(lic["id"]) for lic in licenses) == sorted(ids)
    after = emulator.store.account("lab-partner@example.com")["balance_cents"]
    assert before - after == 100 * TARIFFS["55227"].monthly_cents
    assert emulator.server.request_queue_size == LISTEN_BACKLOG


# -- bad requests ----------------------------------------------------------------------------------


def api_request(emulator, body: bytes, headers: str = "", method: str = "POST", version: str = "HTTP/1.1") -> bytes:
    host, port = emulator.server.server_address[:2]
    return (f"{method} /billmgr {version}\r\nHost: {host}:{port}\r\nConnection: close\r\n{headers}\r\n").encode() + body


def still_serving(emulator) -> bool:
    status, body = call(
        emulator,
        {"method": "GET", "path": "/billmgr", "http": "1.1", "encoding": "query"},
        {"func": "soft", "out": "xml", "authinfo": authinfo(emulator)},
    )
    return status == 200 and b"<error" not in body


@pytest.mark.parametrize(
    "headers, status",
    [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: -1\r\n", 400),
        ("Content-Length: 99999999999\r\n", 413),
        ("Transfer-Encoding: chunked\r\n", 400),  # the body below is no chunk
        ("", 411),  # HTTP/1.1 POST with neither
        ("Content-Type: multipart/form-data\r\nContent-Length: 9\r\n", 400),  # no boundary
        ("Content-Length: 9\r\nContent-Length: 4\r\n", 400),  # two lengths: which one a proxy read is unknown
        ("Content-Length: 9, 4\r\n", 400),
    ],
)
def test_malformed_requests_get_an_http_error_and_the_server_keeps_serving(emulator, capfd, headers, status):
    host, port = emulator.server.server_address[:2]
    answer, body = exchange((host, port), api_request(emulator, b"func=soft", headers), half_close=True)
    assert answer == status, body
    assert emulator.calls == {}  # refused before the API saw it
    assert still_serving(emulator)
    assert "Traceback" not in capfd.readouterr().err


def test_a_silent_client_is_dropped_after_the_read_timeout_and_costs_no_thread(emulator):
    host, port = emulator.server.server_address[:2]
    silent = [socket.create_connection((host, port)) for _ in range(20)]
    try:
        assert still_serving(emulator)
        time.sleep(1.5)  # the fixture's read timeout is 1 s
        for sock in silent:
            sock.settimeout(2)
            assert sock.recv(1) == b""  # closed by the server
    finally:
        for sock in silent:
            sock.close()
    time.sleep(0.1)
    assert threading.active_count() < 10


def test_a_client_that_stops_in_the_middle_of_its_body_gets_a_408_and_is_dropped(emulator):
    host, port = emulator.server.server_address[:2]
    with socket.create_connection((host, port)) as sock:
        sock.sendall(api_request(emulator, b"func=so", "Content-Length: 100\r\n"))
        sock.settimeout(3)
        started = time.monotonic()
        answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer  # as a strict server says it, not a silent close
        assert 0.9 < time.monotonic() - started < 2.5  # the fixture's read timeout is 1 s
    assert emulator.store.licenses() == [] and emulator.refused == {408: 1}
    assert still_serving(emulator)


def test_a_request_head_trickled_a_byte_at_a_time_is_cut_at_its_deadline_with_a_408(tmp_path):
    """No single silence reaches the read timeout (1 s): only the total deadline for the head (2 s) ends it."""
    emulator = PartnerEmulator(tmp_path / "partner", read_timeout=1.0, head_deadline=2.0).start()
    try:
        host, port = emulator.server.server_address[:2]
        head = f"GET /billmgr?func=soft HTTP/1.1\r\nHost: {host}\r\nX-Slow: {'a' * 200}\r\n\r\n".encode()
        with socket.create_connection((host, port), timeout=5) as sock:
            started, sent = time.monotonic(), 0
            while sent < len(head) and time.monotonic() - started < 6:
                sock.sendall(head[sent : sent + 1])
                sent += 1
                if select.select([sock], [], [], 0.1)[0]:  # the server answered (or closed): stop sending
                    break
            answered_after = time.monotonic() - started
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 1.9 < answered_after < 3 and sent < len(head)
        assert emulator.refused == {408: 1}
    finally:
        emulator.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


@pytest.mark.parametrize("lengths", ["Content-Length: 9\r\nContent-Length: 9\r\n", "Content-Length: 9, 9\r\n"])
def test_a_content_length_repeated_with_the_same_value_is_one_length(emulator, lengths):
    host, port = emulator.server.server_address[:2]
    body = f"func=soft&out=bjson&authinfo={authinfo(emulator)}".encode()
    lengths = lengths.replace("9", str(len(body)))
    answer, reply = exchange((host, port), api_request(emulator, body, lengths), half_close=True)
    assert (answer, json.loads(reply)) == (200, {"elem": []})


def order_params(emulator, **extra) -> dict[str, str]:
    return {
        "func": "soft.order.param",
        "pricelist": "55227",
        "period": "1",
        "ip": "203.0.113.60",
        "sok": "ok",
        "skipbasket": "on",
        "out": "xml",
        "authinfo": authinfo(emulator),
        **extra,
    }


@pytest.mark.parametrize("licname", ["bad\x00name", "bad\x01name", "\x1b[31mred"])
def test_control_characters_are_refused_in_the_apis_own_error_shape(emulator, licname):
    status, body = call(
        emulator,
        {"method": "POST", "path": "/billmgr", "http": "1.1", "encoding": "form"},
        order_params(emulator, licname=licname),
    )
    error = ET.fromstring(body).find("error")  # well-formed XML
    assert status == 200 and error is not None and error.get("type") == "value" and error.get("object") == "licname"
    assert emulator.store.licenses() == []


def test_a_stored_value_with_any_character_still_gives_well_formed_xml_json_and_text(emulator):
    style = {"method": "POST", "path": "/billmgr", "http": "1.1", "encoding": "form"}
    status, body = call(emulator, style, order_params(emulator, licname="plain"))
    elid = ET.fromstring(body).findtext("id")
    emulator.store.update_license(int(elid), licname="a\x00b\x01c<&>\ufffe")
    for output in ("xml", "json", "bjson", "text"):
        status, body = call(
            emulator, style, {"func": "soft.edit", "elid": elid, "out": output, "authinfo": authinfo(emulator)}
        )
        assert status == 200
        if output == "xml":
            assert ET.fromstring(body).findtext("licname") == "a\ufffdb\ufffdc<&>\ufffd"
        elif output == "text":
            assert "\n" not in body.decode().split("licname=", 1)[1].split("\n")[0]
        else:
            json.loads(body)


@pytest.mark.parametrize("size, status", [(1_000_000, 200), (MAX_BODY + 1, 413)])
def test_megabyte_fields_are_refused_with_an_error(emulator, size, status):
    body = urlencode(order_params(emulator, licname="x" * size)).encode()
    host, port = emulator.server.server_address[:2]
    answer, reply = exchange((host, port), api_request(emulator, body, f"Content-Length: {len(body)}\r\n"))
    assert answer == status
    if status == 200:
        error = ET.fromstring(reply).find("error")
        assert (error.get("type"), error.get("object")) == ("value", "licname") and "too long" in error.findtext("msg")
    assert emulator.store.licenses() == [] and still_serving(emulator)


def test_a_client_still_sending_a_refused_body_gets_the_413_not_a_reset(emulator):
    """The 413 goes out before the body is read; a client that sends the body after it (as any
    client does that writes before it reads) must still be able to read it."""
    host, port = emulator.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(api_request(emulator, b"", f"Content-Length: {MAX_BODY + 1}\r\n"))
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 413")
        sock.sendall(b"x" * (MAX_BODY + 1))  # refused already: read and dropped, not reset
        rest = reader.read()
    assert b"Request Entity Too Large" in rest and still_serving(emulator)


def test_http_1_1_keeps_the_connection_for_the_next_call(emulator):
    host, port = emulator.server.server_address[:2]
    request = (
        f"GET /billmgr?{urlencode({'func': 'soft', 'out': 'bjson', 'authinfo': authinfo(emulator)})} HTTP/1.1\r\n"
        f"Host: {host}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(request)
            assert reader.readline().startswith(b"HTTP/1.1 200")
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(reader.read(length)) == {"elem": []}


def test_an_order_without_sok_orders_nothing(emulator):
    params = order_params(emulator)
    del params["sok"]
    status, body = call(emulator, {"method": "POST", "path": "/billmgr", "http": "1.1", "encoding": "form"}, params)
    assert status == 200 and ET.fromstring(body).find("id") is None and emulator.store.licenses() == []


def test_unknown_paths_and_the_licctl_endpoint(emulator):
    host, port = emulator.server.server_address[:2]
    assert exchange((host, port), f"GET /nope HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())[0] == 404
    assert urlsplit(emulator.url).path == "/billmgr"


def test_a_paid_order_is_processing_until_its_key_is_issued_then_active_before_any_fetch(emulator):
    """Real clients wait for the key (WHMCS polls soft.edit until lickey is set; Upmind reads it at
    once): once the account hands the key out, the license reads "active", not "ordered"."""
    emulator.set_faults(key_delay=0.6)
    style = {"method": "POST", "path": "/billmgr", "http": "1.1", "encoding": "form"}
    status, body = call(emulator, style, order_params(emulator, out="bjson"))
    elid = json.loads(body)["id"]["v"]

    def read() -> tuple[str, str]:
        model = json.loads(
            call(emulator, style, {"func": "soft.edit", "elid": elid, "out": "bjson", "authinfo": authinfo(emulator)})[
                1
            ]
        )["model"]
        return model["status"], model["lickey"]

    assert read() == ("5", "")  # processing: paid, no key yet
    time.sleep(0.7)
    status, key = read()
    assert (status, key.startswith(f"{elid}-")) == ("2", True)
    assert emulator.calls.get("soft.edit") == 2 and "/licctl" not in str(emulator.calls)  # no server fetched it


def test_every_operation_of_the_table_has_an_emulator_handler():
    from agent.lab.partner.api import HANDLERS
    from agent.partner.operations import BY_NAME

    assert sorted(set(BY_NAME) - set(HANDLERS)) == [], "operations the lab's account cannot answer"
    assert sorted(set(HANDLERS) - set(BY_NAME)) == []


def test_each_operation_as_the_client_sends_it_is_that_operation_to_the_emulator():
    from agent.partner.operations import OPERATIONS, identify

    for operation in OPERATIONS:
        sent = {"func": operation.func, **operation.params(**{name: "1" for name in operation.required})}
        assert identify(sent) is operation, sent


def _serve_in_process_of_its_own(tmp_path: Path, *args: str, env: dict | None = None):
    """`python -m agent.lab.partner` as `lab up` starts it, on a free port; (process, base URL, admin token)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.lab.partner", "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert "partner emulator on" in process.stdout.readline()
    return process, f"http://127.0.0.1:{port}", (state / "admin-token").read_text().strip()


def _admin(base: str, token: str, name: str, data: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/admin/{name}", data=json.dumps(data).encode(), headers={"X-Admin-Token": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_product_emulator_has_no_order_gate_and_a_plug_in_from_the_environment_adds_it(tmp_path):
    from harness.partner_emulator import EXTENSIONS_ENV, LAB_EXTENSIONS

    process, base, token = _serve_in_process_of_its_own(tmp_path / "plain", env={EXTENSIONS_ENV: ""})
    try:
        assert _admin(base, token, "order-gate", {})[0] == 404
        assert _admin(base, token, "faults", {"error_rate": 0})[0] == 200  # the lab's fault profiles stay
    finally:
        process.terminate()
        process.wait()
    process, base, token = _serve_in_process_of_its_own(tmp_path / "gated", env={EXTENSIONS_ENV: LAB_EXTENSIONS})
    try:
        assert _admin(base, token, "order-gate", {"hold_after": 0}) == (
            200,
            {"passed": 0, "held": False, "holding": True},
        )
        assert _admin(base, token, "calls", {})[0] == 200
    finally:
        process.terminate()
        process.wait()


@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_the_emulator_dates_orders_and_renewals_by_the_utc_day_whatever_the_machine_zone(tmp_path, monkeypatch, zone):
    """At any moment one of these two zones has another day than UTC: a store dating by the
    machine's local day fails one of them (ispagent bills by the UTC day, agent/clock.py)."""
    from datetime import datetime, timezone

    from agent.lab.partner.rules import expiry
    from agent.lab.partner.store import AccountStore

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        store = AccountStore(tmp_path / "account.sqlite")
        store.ensure_account("reseller")
        pricelist = next(iter(TARIFFS))
        elid = store.order("reseller", pricelist, 1, "198.18.8.2", "h1", "h1", 0.0)
        utc_day = datetime.now(timezone.utc).date()
        lic = store.license("reseller", str(elid))
        assert lic["createdate"] == utc_day.isoformat()
        store.update_license(elid, expiredate="2000-01-01")
        renewed = store.prolong("reseller", store.license("reseller", str(elid)), 1)
        assert renewed == expiry(utc_day, 1).isoformat()  # renewed from today, the UTC day
    finally:
        monkeypatch.undo()
        time.tzset()
