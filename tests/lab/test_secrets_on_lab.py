"""End to end on the lab: a full install run (playbooks/install.yaml, then a rerun and a dry run) with
every kind of secret set, and every output and artefact of it scanned for them.

The secrets: the password of a PostgreSQL `ledger_url`, the partner account's credentials carried in
`partner_api_url` (user:password@), the activation key an operator brings for one host, the keys the
account hands out for the others, and panel user passwords with quotes, spaces and `=`. The
artefacts: everything under the state dir (journals, events, host logs, run records), the JSON and
JUnit reports, every row of the ledger, and what ispagent leaves on the hosts (its config files and
records, /var/lib/ispagent). The outputs: stdout and stderr of every command, the failing ones too.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from labkit import REPO, ispagent, on_host
from pgkit import pg_schema
from test_install_on_lab import reset_panel

pytestmark = pytest.mark.lab
INSTALL = REPO / "playbooks" / "install.yaml"
HOSTS = 4
PANEL_PASSWORDS = ("it's a \"secret\" = yes", "pw preset=admin $(id)")
HOST_ARTEFACTS = "cat /usr/local/mgr5/etc/ispagent-mgrctl.calls /usr/local/mgr5/etc/ispmgr.conf.d/ispagent.conf " \
                 "/usr/local/mgr5/etc/ihttpd.conf 2>/dev/null; find /var/lib/ispagent -type f -exec cat {} + 2>/dev/null; true"


def _wait_for_key(client, license_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        key = client.get(license_id).key
        if key:
            return key
        time.sleep(0.2)
    raise AssertionError(f"the account gave license {license_id} no key")


def _ledger_rows(url: str) -> list[str]:
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as db:
            return [repr(tuple(row)) for table in metadata.sorted_tables for row in db.execute(select(table))]
    finally:
        engine.dispose()


def test_no_secret_in_any_output_or_artefact_of_a_full_install_run_with_every_secret_set(lab, tmp_path):
    from sqlalchemy.engine import make_url

    from agent.lab.services import inventory_vars
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    hosts = lab.hosts[:HOSTS]
    service = inventory_vars(lab.dir, lab.bridge_address)
    user, password = Path(service["partner_credentials_file"]).read_text().strip().split(":", 1)
    api_url = service["partner_api_url"].replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@", 1)
    client = PartnerClient(settings_from_vars(service))
    ips = {host.address for host in hosts}
    for name in (host.name for host in hosts):
        reset_panel(lab, name)
    for lic in client.list():  # licenses earlier tests left on these hosts in the lab's shared account
        if lic.live and lic.ip in ips:
            client.delete(lic.id)
    operator_license = client.order("lite", "monthly", hosts[0].address, hosts[0].name, "operator-" + secrets.token_hex(4))
    operator_key = _wait_for_key(client, operator_license)
    try:
        with pg_schema() as ledger_url:
            ledger_password = make_url(ledger_url).password
            vars = {
                "edition": "lite", "period": "monthly", "release": "stable",
                "installer_url": service["installer_url"], "partner_api_url": api_url, "ledger_url": ledger_url,
                "partner_timeout": 10, "license_key_wait": 30,
                "panel_presets": [{"name": "basic", "settings": {"disklimit": 1000}}],
                "panel_users": [{"name": f"user{i}", "password": pw, "preset": "basic"} for i, pw in enumerate(PANEL_PASSWORDS)],
            }
            inventory = tmp_path / "inventory.yaml"  # the one input that holds the secrets: not scanned
            inventory.write_text(yaml.safe_dump({
                "ssh": {"known_hosts": str(lab.known_hosts_path), "connect_timeout": 5},
                "defaults": {"user": "root", "identity_file": str(lab.identity_file), "vars": vars},
                "hosts": {h.name: {"address": h.address, "vars": {"fqdn": h.fqdn, **(
                    {"activation_key": operator_key} if h is hosts[0] else {})}} for h in hosts},
            }))
            state = tmp_path / "state"
            run = ["run", str(INSTALL), "-i", str(inventory), "-v"]
            results = {
                "first run": ispagent(*run, "--report-json", str(tmp_path / "first.json"), "--junit",
                                      str(tmp_path / "first.xml"), state_dir=state),
                "rerun": ispagent(*run, "--report-json", str(tmp_path / "second.json"), state_dir=state),
                "dry run": ispagent(*run, "--dry-run", "--report-json", str(tmp_path / "dry.json"), state_dir=state),
            }
            assert results["first run"].returncode == 0, results["first run"].stdout + results["first run"].stderr
            assert results["rerun"].returncode == 0 and "changed 0" in results["rerun"].stdout, results["rerun"].stdout
            licensed = [lic for lic in client.list() if lic.ip in ips and lic.live]
            assert sorted(lic.ip for lic in licensed) == sorted(ips)  # one each; h1's is the operator's
            keys = [_wait_for_key(client, lic.id) for lic in licensed]
            license_id = licensed[0].id
            for name, args in {
                "inventory check": ["inventory", "check", "-i", str(inventory), "--json"],
                "licenses list": ["licenses", "list", "-i", str(inventory), "--json"],
                "licenses show": ["licenses", "show", license_id, "-i", str(inventory)],
                "plan": ["plan", "-i", str(inventory)],
                "reconcile": ["reconcile", "-i", str(inventory)],
                "turnover": ["turnover", "-i", str(inventory), "--format", "json"],
                "ledger export": ["ledger", "export", "-i", str(inventory)],
                "runs": ["runs", "--json"],
                "wrong API password": ["licenses", "list", "--api-url", api_url.replace(quote(password, safe=""), "Wrong-pw-1")],
                "unreachable ledger": ["turnover", "--ledger", ledger_url.replace("@127.0.0.1/", "@127.0.0.1:1/")],
            }.items():
                results[name] = ispagent(*args, state_dir=state)
                assert results[name].returncode == (0 if "wrong" not in name and "unreachable" not in name else 1), \
                    (name, results[name].stdout, results[name].stderr)
            ledger_rows = _ledger_rows(ledger_url)

        secret_values = {"partner password": password, "ledger password": ledger_password, "operator key": operator_key,
                         **{f"key of license {lic.id}": key for lic, key in zip(licensed, keys)},
                         **{f"panel password {i}": pw for i, pw in enumerate(PANEL_PASSWORDS)}}
        texts = {f"{name}: {stream}": getattr(result, stream) for name, result in results.items() for stream in ("stdout", "stderr")}
        files = [path for path in tmp_path.rglob("*") if path.is_file() and path != inventory]
        texts |= {str(path.relative_to(tmp_path)): path.read_bytes().decode("utf-8", "replace") for path in files}
        texts["ledger rows"] = "\n".join(ledger_rows)
        texts |= {f"{host.name}: ispagent's files": on_host(lab, host.name, HOST_ARTEFACTS).stdout for host in hosts}
        assert any(path.suffix == ".log" for path in files) and any(path.name == "events.jsonl" for path in files)
        assert len(ledger_rows) > 10 and all(texts[f"{h.name}: ispagent's files"] for h in hosts)
        hits = [(secret, where) for secret, value in secret_values.items() for where, text in texts.items() if value in text]
        assert hits == []
        print(f"\nsecret scan of a full install run (first run, rerun, dry run) on {HOSTS} lab hosts: "
              f"{len(secret_values)} secrets x ({len(files)} files, {len(ledger_rows)} ledger rows, "
              f"{HOSTS} hosts' ispagent files, {len(results) * 2} outputs of {len(results)} commands): {len(hits)} hits")
    finally:
        for lic in client.list():
            if lic.ip in ips and lic.live:
                client.delete(lic.id)
        for host in hosts:
            reset_panel(lab, host.name)
