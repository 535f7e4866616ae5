"""The partner API client: reply formats and errors from data files, then calls against the emulator."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import (
    PartnerAuthFailed,
    PartnerBadIp,
    PartnerCallNotSent,
    PartnerConfigError,
    PartnerNotFound,
    PartnerPaymentRequired,
    PartnerTransient,
)
from agent.partner.client import PartnerClient
from agent.partner.model import LicenseStatus, license_from_fields
from agent.partner.replies import parse_reply, record, records, text_of
from agent.partner.settings import DEFAULT_PRICELISTS, REGION_URLS, read_credentials, settings_from_vars
from agent.secrets import mask
from partnerkit import start_emulator

DATA = Path(__file__).parent / "data" / "partner"
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
    assert (lic.id, lic.ip, lic.status, lic.edition, lic.expiredate) == ("3100042", "203.0.113.7", LicenseStatus.ACTIVE, "lite", "2026-12-01")
    assert lic.key == "3100042-0f1e2d3c4b5a69788796a5b4"
    assert lic.key not in repr(lic) and mask(f"key {lic.key}") == "key ***"  # registered as a secret when parsed


def test_list_and_nested_prolong_reply_in_xml():
    found = [license_from_fields(r, BY_PRICELIST) for r in records(_reply("list.xml"))]
    assert [(l.id, l.edition, l.free) for l in found] == [("1", "pro", False), ("2", "lite", True)]
    assert text_of(_reply("prolong.xml"), "doc", "newexpiredate") == "2027-12-01"


@pytest.mark.parametrize("name, error", [
    ("error_auth.xml", PartnerAuthFailed),
    ("error_missed.bjson", PartnerNotFound),
    ("error_ip.json", PartnerBadIp),
    ("error_plain_msg.bjson", PartnerPaymentRequired),
])
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
    return PartnerClient(settings_from_vars({"partner_api_url": emulator.url,
                                             "partner_credentials_file": str(emulator.credentials_file), **vars}),
                         sleep=lambda s: None)


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


def test_wrong_password_and_unpaid_account_are_typed(emulator, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("lab-partner@example.com:wrong\n")
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
        assert json.load(reply) == {"licid": elid, "panel_name": "ISPmanager Host", "expire": client.get(elid).expiredate,
                                    "ip": "127.0.0.1"}
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


def test_credentials_in_the_api_url_are_used_and_never_kept_in_the_url(monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    settings = settings_from_vars({"partner_api_url": "https://reseller%40example.com:Url-pw%2F77@api.example.com/billmgr"})
    assert (settings.user, settings.password) == ("reseller@example.com", "Url-pw/77")
    assert settings.api_url == "https://api.example.com/billmgr" and "Url-pw" not in repr(settings)
    assert mask("password Url-pw/77 and Url-pw%2F77") == "password *** and ***"


def test_credentials_in_the_api_url_and_a_credentials_file_are_refused_together(monkeypatch):
    monkeypatch.delenv("ISPAGENT_PARTNER_AUTHINFO", raising=False)
    vars = {"partner_api_url": "https://u:Url-pw-77@api.example.com/billmgr", "partner_credentials_file": "/x"}
    with pytest.raises(PartnerConfigError, match="keep one"):
        settings_from_vars(vars)


@pytest.mark.parametrize("kind,message", [
    ("directory", "is a directory, not a credentials file; give the path of the file"),
    ("fifo", "is a FIFO, not a regular file; give the path of a file"),
    ("latin-1", "the credentials file is not UTF-8 text (byte 0xe4); save it as UTF-8"),
])
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
@given(text=st.text(max_size=60) | st.sampled_from(
    ["reseller@example.com:s3cret-pass\n", "# comment\nreseller@example.com:s3cret-pass", ":nouser", "nopass:", "", "\ufeffu:p4ss"]))
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
