"""The partner API client: reply formats and errors from data files, every reply shape the emulator renders,
the retry policy (exactly once), TLS, connection reuse and proxies, then calls against the emulator."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from partnerkit import start_emulator

from agent.errors import (
    PartnerAuthFailed,
    PartnerBadIp,
    PartnerCallNotSent,
    PartnerConfigError,
    PartnerError,
    PartnerNotFound,
    PartnerPaymentRequired,
    PartnerTransient,
)
from agent.lab.partner import TARIFFS, ApiError
from agent.lab.partner.rendering import Document, render
from agent.partner.client import PartnerClient
from agent.partner.model import LicenseStatus, license_from_fields
from agent.partner.operations import OPERATIONS, ReplyShape
from agent.partner.replies import parse_reply, record, records, text_of
from agent.partner.settings import (
    DEFAULT_PRICELISTS,
    REGION_URLS,
    PartnerSettings,
    read_credentials,
    settings_from_vars,
)
from agent.secrets import mask

DATA = Path(__file__).parents[1] / "data" / "partner"
BY_PRICELIST = {v: k for k, v in DEFAULT_PRICELISTS.items()}


def _reply(name: str):
    output = "xml" if name.endswith(".xml") else "bjson"
    return parse_reply((DATA / name).read_bytes(), output, "test")


@pytest.mark.parametrize("name", ["order.bjson", "order.xml", "order_wrapped.json"])
def test_order_id_is_read_from_every_format(name):
    assert text_of(_reply(name), "id") == "3100042"


@pytest.mark.parametrize("name", ["edit.bjson", "edit.xml"])
def test_soft_edit_record_gives_license_with_key_in_every_format(name):
    lic = license_from_fields(record(_reply(name)), BY_PRICELIST)
    assert (lic.id, lic.ip, lic.status, lic.edition, lic.expiredate) == (
        "3100042",
        "203.0.113.7",
        LicenseStatus.ACTIVE,
        "lite",
        "2026-12-01",
    )
    assert lic.key == "3100042-0f1e2d3c4b5a69788796a5b4"
    assert lic.key not in repr(lic) and mask(f"key {lic.key}") == "key ***"  # registered as a secret when parsed


def test_list_and_nested_prolong_reply_in_xml():
    found = [license_from_fields(r, BY_PRICELIST) for r in records(_reply("list.xml"))]
    assert [(l.id, l.edition, l.free) for l in found] == [("1", "pro", False), ("2", "lite", True)]
    assert text_of(_reply("prolong.xml"), "doc", "newexpiredate") == "2027-12-01"


@pytest.mark.parametrize(
    "name, error",
    [
        ("error_auth.xml", PartnerAuthFailed),
        ("error_missed.bjson", PartnerNotFound),
        ("error_ip.json", PartnerBadIp),
        ("error_plain_msg.bjson", PartnerPaymentRequired),
    ],
)
def test_api_error_objects_become_typed_errors(name, error):
    with pytest.raises(error) as raised:
        _reply(name)
    assert "partner API refused test" in str(raised.value)


def test_empty_or_garbled_reply_is_transient():
    for body in (b"", b"  \n", b"<html>502 Bad Gateway"):
        with pytest.raises(PartnerTransient):
            parse_reply(body, "bjson", "soft")


def test_credentials_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    path = tmp_path / "credentials"
    path.write_text("reseller@example.com:s3cret-pass\n")
    path.chmod(0o644)
    with pytest.raises(PartnerConfigError, match="chmod 600"):
        settings_from_vars({"partner_credentials_file": str(path)})
    path.chmod(0o600)
    settings = settings_from_vars({"partner_credentials_file": str(path)})
    assert (settings.user, settings.api_url) == ("reseller@example.com", REGION_URLS["eu"])
    assert "s3cret-pass" not in repr(settings) and mask("s3cret-pass") == "***"


def test_settings_from_environment_region_and_bad_values(monkeypatch):
    monkeypatch.setenv("ISPAGENT_PARTNER_AUTHINFO", "u@example.com:env-pass-123")
    assert settings_from_vars({"partner_region": "ru"}).api_url == REGION_URLS["ru"]
    for vars, words in [
        ({"partner_region": "us"}, "partner_region"),
        ({"partner_api_url": "http://api.example.com/billmgr"}, "use https"),
        ({"pricelists": {"lite": "abc"}}, "pricelists.lite"),
        ({"pricelists": {"ultra": 1}}, "'ultra'"),
        ({"reuse_free": "yes"}, "reuse_free"),
        ({"partner_timeout": 0}, "partner_timeout"),
    ]:
        with pytest.raises(PartnerConfigError, match=words):
            settings_from_vars(vars)
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO")
    with pytest.raises(PartnerConfigError, match="no partner credentials"):
        settings_from_vars({})


@pytest.fixture
def emulator(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    yield emulator
    emulator.stop()


def _client(emulator, **vars) -> PartnerClient:
    return PartnerClient(
        settings_from_vars(
            {"partner_api_url": emulator.url, "partner_credentials_file": str(emulator.credentials_file), **vars}
        ),
        sleep=lambda s: None,
    )


@pytest.mark.parametrize("output", ["bjson", "xml"])
def test_every_call_against_the_emulator(emulator, output):
    client = _client(emulator, partner_output=output)
    elid = client.order("pro", "annual", "203.0.113.9", "web9.example.com", "isp-1")
    lic = client.get(elid)
    assert (lic.edition, lic.ip, lic.licname, lic.remoteid) == ("pro", "203.0.113.9", "web9.example.com", "isp-1")
    assert lic.key.startswith(f"{elid}-")
    assert [l.id for l in client.list()] == [elid]
    client.set_ip_and_name(elid, ip="203.0.113.10", licname="web10.example.com")
    assert client.get(elid).ip == "203.0.113.10"
    old_key = lic.key
    assert client.new_key(elid) not in ("", old_key)
    assert client.renew(elid, "monthly") > lic.expiredate
    client.change_tariff(elid, "business", "monthly")
    assert client.get(elid).edition == "business"
    client.suspend(elid)
    assert client.get(elid).status == LicenseStatus.SUSPENDED
    client.resume(elid)
    client.delete(elid)
    with pytest.raises(PartnerNotFound):
        client.get(elid)
    with pytest.raises(PartnerBadIp):
        client.order("lite", "monthly", "not-an-ip", "x", "")


def test_a_list_keeps_no_keys_and_registers_none_as_a_secret(emulator):
    """Keys come from `get`, one license at a time; a 20 000-license list registering each key took
    minutes, and slowed every masked line after it."""
    client = _client(emulator)
    elid = client.order("lite", "monthly", "203.0.113.9", "web9.example.com", "isp-1")
    emulator.store.update_license(int(elid), lickey=f"{elid}-listedkeynotregistered")
    assert [(lic.id, lic.key) for lic in client.list()] == [(elid, None)]
    assert mask(f"{elid}-listedkeynotregistered") == f"{elid}-listedkeynotregistered"
    assert client.get(elid).key == f"{elid}-listedkeynotregistered"  # read with its license: a secret from now on
    assert mask(f"{elid}-listedkeynotregistered") == "***"


@pytest.mark.parametrize("output", ["bjson", "xml"])
def test_a_list_is_read_and_made_into_licenses_with_cyclic_collection_paused_then_resumed(
    emulator, output, monkeypatch
):
    """A partner's list is hundreds of thousands of dicts in no cycle: full collections walking the
    whole process while they are made cost a large account's run 0.2-0.3 s."""
    import gc

    import agent.partner.client

    seen = []
    for name in ("parse_reply", "license_from_fields"):
        real = getattr(agent.partner.client, name)
        monkeypatch.setattr(
            agent.partner.client,
            name,
            lambda *a, _name=name, _real=real: seen.append((_name, gc.isenabled())) or _real(*a),
        )
    client = _client(emulator, partner_output=output)
    elid = client.order("lite", "monthly", "203.0.113.9", "web9.example.com", "isp-1")
    seen.clear()
    assert [lic.id for lic in client.list()] == [elid]
    assert seen == [("parse_reply", False), ("license_from_fields", False)]
    assert gc.isenabled()


def test_watchers_see_every_call_its_outcome_and_the_parameters_sent(emulator):
    client = _client(emulator)
    seen = []
    client.watch(
        lambda operation, params, result, error: seen.append(
            (operation.name, params.get("ip"), result if operation.name == "order" else None, type(error).__name__)
        )
    )
    elid = client.order("lite", "monthly", "203.0.113.9", "x", "")
    emulator.set_faults(drop_rate=1.0, functions=["soft.suspend"])
    with pytest.raises(PartnerTransient):
        client.suspend(elid)
    with pytest.raises(PartnerNotFound):
        client.resume("999")
    assert seen == [
        ("order", "203.0.113.9", elid, "NoneType"),
        ("suspend", None, None, "PartnerTransient"),
        ("resume", None, None, "PartnerNotFound"),
    ]


def test_wrong_password_and_unpaid_account_are_typed(emulator, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("lab-partner@example.com:wrong-password\n")
    bad.chmod(0o600)
    with pytest.raises(PartnerAuthFailed):
        _client(emulator, partner_credentials_file=str(bad)).list()
    emulator.store.update_account("lab-partner@example.com", unpaid=1)
    with pytest.raises(PartnerPaymentRequired, match="unpaid invoice"):
        _client(emulator).order("lite", "monthly", "203.0.113.9", "x", "")


def test_reads_are_retried_but_a_write_without_an_answer_is_not(emulator):
    client = _client(emulator)
    emulator.set_faults(error_rate=1.0, functions=["soft"])
    with pytest.raises(PartnerTransient):
        client.list()
    assert emulator.calls["soft"] == 6
    emulator.set_faults(drop_rate=1.0, functions=["soft.order.param"])
    with pytest.raises(PartnerTransient, match="no complete answer"):
        client.order("lite", "monthly", "203.0.113.9", "x", "")
    assert emulator.calls["soft.order.param"] == 1 and len(emulator.store.licenses()) == 1  # committed, then dropped


def test_refused_connection_is_known_not_sent(monkeypatch):
    monkeypatch.setenv("ISPAGENT_PARTNER_AUTHINFO", "u:p-unused-1")
    client = PartnerClient(settings_from_vars({"partner_api_url": "http://127.0.0.1:9/billmgr"}), sleep=lambda s: None)
    with pytest.raises(PartnerCallNotSent):
        client.order("lite", "monthly", "203.0.113.9", "x", "")


def test_emulator_answers_licctl_fetch_by_key_and_by_ip(emulator):
    client = _client(emulator)
    elid = client.order("host", "monthly", "127.0.0.1", "h.example.com", "")
    key = client.get(elid).key
    base = emulator.url.replace("/billmgr", "/licctl/fetch?licname=ispmgr&key=")
    with urllib.request.urlopen(base + key) as reply:
        assert json.load(reply) == {
            "licid": elid,
            "panel_name": "ISPmanager Host",
            "expire": client.get(elid).expiredate,
            "ip": "127.0.0.1",
        }
    assert client.get(elid).status == LicenseStatus.ACTIVE
    with urllib.request.urlopen(base) as reply:  # no key: by the caller's IP
        assert json.load(reply)["licid"] == elid
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "123-nope")
    assert refused.value.code == 403 and json.load(refused.value) == {"error": "Invalid activation key"}


def test_emulator_writes_private_credentials_and_takes_faults_from_its_settings_file(emulator):
    assert oct(emulator.credentials_file.stat().st_mode & 0o777) == "0o600"
    (emulator.state_dir / "faults.json").write_text(json.dumps({"error_rate": 1.0}))
    client = _client(emulator)
    with pytest.raises(PartnerTransient, match="HTTP 503"):
        client.list()


# -- every reply shape the emulator can produce, through the client's own methods -----------------

FIELDS = {
    "id": "42",
    "name": "ISPmanager Pro",
    "licname": "web.example.com",
    "ip": "203.0.113.7",
    "remoteid": "isp-1",
    "lickey": "42-0f1e2d3c",
    "status": "2",
    "webdomains": "10",
    "createdate": "2026-11-01",
    "expiredate": "2026-12-01",
    "pricelist": "55228",
    "pricelist_name": "ISPmanager Pro",
    "period": "1",
}
OTHER = {
    **FIELDS,
    "id": "43",
    "ip": "0.0.0.0",
    "licname": "free.lic",
    "lickey": "",
    "status": "3",
    "pricelist": "55227",
}


def _summary(lic):
    return (lic.id, lic.ip, lic.edition, lic.status, lic.key, lic.free)


def _order(client):
    return client.order("pro", "monthly", "203.0.113.7", "web.example.com", "isp-1")


# (what the client does, the reply the emulator renders, what the client must make of it)
REPLY_SHAPES = {
    "order": (_order, Document(values={"id": "42", "item.id": "42", "elid": "42"}), "42"),
    "order, item.id only": (_order, Document(values={"item.id": "42"}), "42"),
    "order, elid only": (_order, Document(values={"elid": "42"}), "42"),
    "order without sok: the form, no id": (
        _order,
        Document(values={"pricelist": "55228", "period": "1"}),
        PartnerTransient,
    ),
    "get": (
        lambda c: _summary(c.get("42")),
        Document(record={"elid": "42", **FIELDS}),
        ("42", "203.0.113.7", "pro", LicenseStatus.ACTIVE, "42-0f1e2d3c", False),
    ),
    "get, key not issued yet": (
        lambda c: _summary(c.get("42")),
        Document(record={**FIELDS, "lickey": "", "status": "5"}),
        ("42", "203.0.113.7", "pro", LicenseStatus.PROCESSING, None, False),
    ),
    "list, empty": (lambda c: c.list(), Document(elems=[]), []),
    # A list's keys are dropped unread (a key comes from `get`): test_a_list_keeps_no_keys...
    "list, one": (
        lambda c: [_summary(l) for l in c.list()],
        Document(elems=[FIELDS]),
        [("42", "203.0.113.7", "pro", LicenseStatus.ACTIVE, None, False)],
    ),
    "list, two": (
        lambda c: [_summary(l) for l in c.list()],
        Document(elems=[FIELDS, OTHER]),
        [
            ("42", "203.0.113.7", "pro", LicenseStatus.ACTIVE, None, False),
            ("43", "0.0.0.0", "lite", LicenseStatus.SUSPENDED, None, True),
        ],
    ),
    "renew": (lambda c: c.renew("42", "monthly"), Document(nested={"newexpiredate": "2027-01-01"}), "2027-01-01"),
    "new key": (lambda c: c.new_key("42"), Document(record={"elid": "42", **FIELDS, "lickey": "42-new"}), "42-new"),
    "move": (
        lambda c: c.set_ip_and_name("42", ip="203.0.113.8"),
        Document(record={**FIELDS, "ip": "203.0.113.8"}),
        None,
    ),
    "suspend": (lambda c: c.suspend("42"), Document(values={"ok": None}), None),
    "change tariff": (lambda c: c.change_tariff("42", "host", "monthly"), Document(values={"ok": None}), None),
    "error: auth": (lambda c: c.list(), Document(error=ApiError("auth")), PartnerAuthFailed),
    "error: no such license": (lambda c: c.get("9"), Document(error=ApiError("missed")), PartnerNotFound),
    "error: bad IP": (_order, Document(error=ApiError("ip")), PartnerBadIp),
    "error: IP taken": (_order, Document(error=ApiError("ip_taken")), PartnerBadIp),
    "error: unpaid invoice": (_order, Document(error=ApiError("unpaid")), PartnerPaymentRequired),
    "error: no funds": (_order, Document(error=ApiError("funds")), PartnerPaymentRequired),
    "error: value too long": (_order, Document(error=ApiError("too_long", field="licname", limit=255)), PartnerError),
    "error: bad characters": (_order, Document(error=ApiError("characters", field="licname")), PartnerError),
    "error: unknown function": (lambda c: c.list(), Document(error=ApiError("func")), PartnerError),
}


def _mock_client(output: str, reply, sent: list | None = None, sleep=lambda s: None) -> PartnerClient:
    """A client whose network is `reply(request)` (an httpx.Response or an exception to raise)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        answer = reply(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = PartnerSettings(
        api_url="https://partner.example/billmgr", user="u@example.com", password="pw-1", output=output
    )
    return PartnerClient(settings, sleep=sleep, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("output", ["bjson", "xml", "json"])
@pytest.mark.parametrize("shape", REPLY_SHAPES, ids=list(REPLY_SHAPES))
def test_reply_shape_table(shape, output):
    action, document, expected = REPLY_SHAPES[shape]
    content_type, body = render(document, output)
    sent: list = []
    client = _mock_client(
        output, lambda request: httpx.Response(200, content=body, headers={"Content-Type": content_type}), sent
    )
    if isinstance(expected, type) and issubclass(expected, Exception):
        with pytest.raises(expected) as raised:
            action(client)
        assert type(raised.value) is expected
    else:
        assert action(client) == expected
    form = dict(parse_qsl(sent[0].content.decode()))
    assert sent[0].method == "POST" and (form["out"], form["authinfo"]) == (output, "u@example.com:pw-1")


# -- the retry policy: exactly once ---------------------------------------------------------------


def _answer(output="bjson"):
    body = render(Document(elems=[]), output)[1]
    return lambda request: httpx.Response(200, content=body)


@pytest.mark.parametrize(
    "failure, retried",
    [
        (httpx.ConnectError("connection refused"), True),  # the request never left
        (httpx.ConnectTimeout("connect timed out"), True),
        (httpx.ReadTimeout("read timed out"), False),  # sent, maybe done
        (httpx.RemoteProtocolError("server disconnected without a response"), False),
        (httpx.WriteError("broken pipe"), False),
    ],
)
def test_a_write_is_repeated_only_when_it_provably_never_left(failure, retried):
    client = _mock_client("bjson", lambda request: failure)
    with pytest.raises(PartnerCallNotSent if retried else PartnerTransient) as raised:
        _order(client)
    assert client.calls["soft.order.param"] == (3 if retried else 1)
    assert retried == isinstance(raised.value, PartnerCallNotSent)


def test_a_write_answered_5xx_is_not_repeated_a_read_is():
    client = _mock_client("bjson", lambda request: httpx.Response(503, content=b"busy"))
    with pytest.raises(PartnerTransient, match="HTTP 503"):
        _order(client)
    with pytest.raises(PartnerTransient, match="HTTP 503"):
        client.list()
    assert (client.calls["soft.order.param"], client.calls["soft"]) == (1, 6)


def test_reads_back_off_and_succeed_when_the_api_recovers():
    answers = iter([httpx.ReadTimeout("slow"), httpx.Response(502), httpx.ConnectError("refused")])
    waits: list[float] = []
    client = _mock_client("bjson", lambda request: next(answers, None) or _answer()(request), sleep=waits.append)
    assert client.list() == []
    assert client.calls["soft"] == 4 and waits == [0.1, 0.2, 0.4]


def test_an_untrusted_certificate_is_a_setup_error_not_a_transient_one(tmp_path):
    """TLS is verified: a self-signed server is refused before anything is sent, and never retried."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve():
            for _ in range(3):
                try:
                    conn, _ = listener.accept()
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except OSError:
                    pass

        threading.Thread(target=serve, daemon=True).start()
        settings = PartnerSettings(api_url=f"https://127.0.0.1:{port}/billmgr", user="u", password="p-unused-2")
        client = PartnerClient(settings, sleep=lambda s: None)
        with pytest.raises(PartnerConfigError, match="TLS certificate not trusted"):
            client.list()
        assert client.calls["soft"] == 1


def _self_signed(directory):
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_calls_reuse_one_connection(emulator):
    connections = []
    accept = emulator.server.process_request
    emulator.server.process_request = lambda request, address: (connections.append(address), accept(request, address))
    with _client(emulator) as client:
        for _ in range(5):
            client.list()
        elid = client.order("lite", "monthly", "203.0.113.9", "x", "")
        client.get(elid)
    assert client.calls.total() == 7 and len(connections) == 1


def test_proxies_come_from_the_environment(emulator, monkeypatch):
    """HTTP_PROXY set: the call goes through it (here the emulator itself, which reads absolute URIs)."""
    host, port = emulator.server.server_address[:2]
    monkeypatch.setenv("HTTP_PROXY", f"http://{host}:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    user, password = emulator.credentials_file.read_text().strip().split(":", 1)
    settings = PartnerSettings(api_url="http://partner-api.invalid/billmgr", user=user, password=password)
    with PartnerClient(settings, sleep=lambda s: None) as client:
        assert client.list() == []


def test_200_concurrent_calls_through_one_client_all_answered_no_duplicate_exact_balance(emulator):
    before = emulator.store.account("lab-partner@example.com")["balance_cents"]
    client = _client(emulator)

    def one(index: int):
        if index % 2:
            return client.list()
        return client.order("lite", "monthly", f"198.51.100.{index // 2}", f"c{index}", f"r{index}")

    try:
        with ThreadPoolExecutor(200) as pool:
            results = list(pool.map(one, range(200)))
    finally:
        client.close()  # else its kept-alive connections hold the emulator's threads into the next test
    ids = results[0::2]
    assert len(set(ids)) == 100 and sorted(str(l["id"]) for l in emulator.store.licenses()) == sorted(ids)
    assert all(isinstance(listed, list) for listed in results[1::2])
    # An order is sent once, whatever happens; a list (a read) that met a timeout under this load is
    # sent again, as it should be: only orders are counted exactly.
    assert client.calls["soft.order.param"] == 100 and client.calls["soft"] >= 100 and len(client.calls) == 2
    assert (
        before - emulator.store.account("lab-partner@example.com")["balance_cents"]
        == 100 * TARIFFS["55227"].monthly_cents
    )


def _connections_to(port: int) -> dict[str, int]:
    """This machine's IPv4 TCP sockets whose far end is `port`, by state: the client's side of each
    connection to a server on `port` (TIME_WAIT: closed by the client)."""
    states = {"01": "established", "06": "time_wait"}
    found = {"established": 0, "time_wait": 0, "other": 0}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == port:
            found[states.get(fields[3], "other")] += 1
    return found


def test_the_client_closes_no_connection_of_its_pool_before_it_is_closed(emulator):
    """httpcore closes idle connections beyond max_keepalive_connections, and may close one it has
    just handed to a call still waiting for it: an order sent, its answer read from a closed socket
    (encode/httpcore#1110). The client keeps alive every connection its pool may open."""
    client = _client(emulator)
    port = urlsplit(emulator.url).port
    assert port is not None
    closed_before = _connections_to(port)["time_wait"]
    start = threading.Barrier(60)

    def one(index: int):
        start.wait()
        return client.list()

    try:
        with ThreadPoolExecutor(60) as pool:
            list(pool.map(one, range(60)))
        connections = _connections_to(port)
        assert connections["established"] > 20  # more than httpcore keeps by default: the path was open
        assert connections["time_wait"] <= closed_before
    finally:
        client.close()


def test_credentials_in_the_api_url_are_used_and_never_kept_in_the_url(monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    settings = settings_from_vars(
        {"partner_api_url": "https://reseller%40example.com:Url-pw%2F77@api.example.com/billmgr"}
    )
    assert (settings.user, settings.password) == ("reseller@example.com", "Url-pw/77")
    assert settings.api_url == "https://api.example.com/billmgr" and "Url-pw" not in repr(settings)
    assert mask("password Url-pw/77 and Url-pw%2F77") == "password *** and ***"


def test_credentials_in_the_api_url_and_a_credentials_file_are_refused_together(monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    vars = {"partner_api_url": "https://u:Url-pw-77@api.example.com/billmgr", "partner_credentials_file": "/x"}
    with pytest.raises(PartnerConfigError, match="keep one"):
        settings_from_vars(vars)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("directory", "is a directory, not a credentials file; give the path of the file"),
        ("fifo", "is a FIFO, not a regular file; give the path of a file"),
        ("latin-1", "the credentials file is not UTF-8 text (byte 0xe4); save it as UTF-8"),
    ],
)
def test_a_credentials_file_that_is_not_a_regular_utf8_file_is_one_line(kind, message, tmp_path, monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    path = tmp_path / "credentials"
    if kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.write_bytes(b"reseller:p\xe4ss\n")
        path.chmod(0o600)
    with pytest.raises(PartnerConfigError) as raised:
        settings_from_vars({"partner_credentials_file": str(path)})
    line = f"{path}:1" if kind == "latin-1" else str(path)
    assert str(raised.value) == f"partner_credentials_file: {line}: {message}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=60)
    | st.sampled_from(
        [
            "reseller@example.com:s3cret-pass\n",
            "# comment\nreseller@example.com:s3cret-pass",
            ":nouser",
            "nopass:",
            "",
            "\ufeffu:p4ss",
        ]
    )
)
def test_a_credentials_file_gives_user_and_password_or_one_line(tmp_path, monkeypatch, text):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    path = tmp_path / "credentials"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    path.chmod(0o600)
    try:
        user, password = read_credentials(path)
    except PartnerConfigError as error:
        assert len(str(error).splitlines()) == 1
        return
    assert user and password and ":" not in user and "\n" not in user + password


def test_a_429_is_refused_unprocessed_so_even_a_write_waits_its_retry_after_and_goes_again():
    """HTTP 429 (rate limited) means the call was not done: an order is repeated after Retry-After."""
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(429, headers={"Retry-After": "7"})]
    )
    waits: list[float] = []
    body = render(Document(values={"id": "31001"}), "bjson")[1]
    client = _mock_client(
        "bjson", lambda request: next(answers, None) or httpx.Response(200, content=body), sleep=waits.append
    )
    assert _order(client) == "31001"
    assert client.calls["soft.order.param"] == 3 and waits == [2, 7]


def test_a_429_without_end_stops_after_the_write_attempts_as_not_sent_and_caps_a_huge_retry_after():
    client = _mock_client(
        "bjson", lambda request: httpx.Response(429, headers={"Retry-After": "86400"}), sleep=(waits := []).append
    )
    with pytest.raises(PartnerCallNotSent, match="HTTP 429"):
        _order(client)
    assert client.calls["soft.order.param"] == 3 and waits == [30, 30]


def test_emulator_429_fault_carries_retry_after_and_the_client_orders_once_it_clears(emulator):
    emulator.set_faults(rate_limit_rate=1.0, retry_after=3, functions=["soft.order.param"])
    waits: list[float] = []
    client = PartnerClient(
        settings_from_vars(
            {"partner_api_url": emulator.url, "partner_credentials_file": str(emulator.credentials_file)}
        ),
        sleep=lambda s: (waits.append(s), emulator.set_faults()),
    )
    license_id = client.order("lite", "monthly", "198.18.0.9", "h9.lab.example", "isp-9")
    assert waits == [3] and emulator.injected == {"429": 1}
    assert [lic["id"] for lic in emulator.store.licenses()] == [int(license_id)]


def test_emulator_order_gate_holds_the_next_order_and_refuses_it_unprocessed_when_dropped(emulator):
    import threading

    client = _client(emulator)
    emulator.order_gate.hold_after(1)
    client.order("lite", "monthly", "198.18.0.10", "h10.lab.example", "isp-10")
    errors: list[Exception] = []

    def second() -> None:
        try:
            client.order("lite", "monthly", "198.18.0.11", "h11.lab.example", "isp-11")
        except Exception as error:  # the reset is the point
            errors.append(error)

    waiting = threading.Thread(target=second)
    waiting.start()
    assert emulator.order_gate.held.wait(10)
    emulator.order_gate.release(drop=True)
    waiting.join(10)
    assert len(emulator.store.licenses()) == 1 and isinstance(errors[0], PartnerTransient)


def test_a_plug_in_loses_the_answers_of_the_next_orders_done_and_only_theirs(emulator):
    client = _client(emulator)
    emulator.lost_order_answers.lose_next(1)
    client.list()  # not an order: its answer arrives
    with pytest.raises(PartnerTransient, match="no complete answer"):
        client.order("lite", "monthly", "198.18.0.12", "h12.lab.example", "isp-12")
    client.order("lite", "monthly", "198.18.0.13", "h13.lab.example", "isp-13")  # only the next one was lost
    assert len(emulator.store.licenses()) == 2  # both committed
    assert emulator.injected == {"drop soft.order.param": 1}


def test_emulator_order_gate_is_driven_over_http_by_a_process_that_does_not_hold_the_emulator(emulator):
    import threading

    admin_url = emulator.url.replace("/billmgr", "/admin/order-gate")

    def gate(request: dict) -> dict:
        return httpx.post(admin_url, json=request, headers={"X-Admin-Token": emulator.admin_token}).json()

    assert gate({"hold_after": 1}) == {"passed": 0, "held": False, "holding": True}
    client = _client(emulator)
    client.order("lite", "monthly", "198.18.0.10", "h10.lab.example", "isp-10")
    waiting = threading.Thread(
        target=client.order, args=("lite", "monthly", "198.18.0.11", "h11.lab.example", "isp-11")
    )
    waiting.start()
    assert emulator.order_gate.held.wait(10)
    assert gate({}) == {"passed": 1, "held": True, "holding": True}
    assert len(emulator.store.licenses()) == 1
    assert gate({"release": True})["holding"] is False
    waiting.join(10)
    assert len(emulator.store.licenses()) == 2
    assert httpx.post(admin_url, json={}).status_code == 403


# -- the operations table, end to end --------------------------------------------------------------

# What each reply shape must give the client's `call`; a shape without an entry fails the test below.
SHAPE_CHECKS = {
    ReplyShape.ORDER_ID: lambda value: value.isdigit(),
    ReplyShape.RECORD: lambda value: value.get("id", "").isdigit(),
    ReplyShape.RECORDS: lambda value: isinstance(value, list) and len(value) >= 1,
    ReplyShape.NEW_EXPIRY: lambda value: len(value) == 10 and value[4] == "-",
    ReplyShape.DONE: lambda value: value is None,
    ReplyShape.FORM: lambda value: isinstance(value, dict) and value != {},
}


def test_every_operation_of_the_table_called_by_the_client_gets_its_reply_shape_from_the_emulator(emulator):
    client = _client(emulator)
    elid = client.order("lite", "monthly", "203.0.113.70", "t.example.com", "")
    values = {
        "elid": elid,
        "pricelist": "55228",
        "period": "1",
        "ip": "203.0.113.71",
        "licname": "u.example.com",
        "remoteid": "r-1",
        "project": "ISPsystem",
    }
    last = [op for op in OPERATIONS if op.name == "delete"]  # the license must live until every other call is made
    for operation in [op for op in OPERATIONS if op.name != "delete"] + last:
        if operation.name == "check_ip":
            sent = {"ip": "203.0.113.72"}  # an IP no license holds: no error
        else:
            sent = {name: values[name] for name in (*operation.required, *operation.optional)}
        value = client.call(operation, **sent)
        assert SHAPE_CHECKS[operation.reply](value), (operation.name, value)
    assert sum(client.calls.values()) == len(OPERATIONS) + 1  # the setup's order, then one call each: no retry


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["$", "$a", "v", "id", "ip", "elem"]), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_values)
def test_a_field_taken_by_the_fast_path_reads_as_the_general_conversion_reads_it(value):
    """replies._plain converts a dict's field values through _plain_field; it must give what _plain gives."""
    from agent.partner.replies import _plain, _plain_field

    assert _plain_field(value) == _plain(value)
