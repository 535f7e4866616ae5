"""End to end on the lab: a full install run (playbooks/install.yaml, then a rerun and a dry run) with
every kind of secret set, and every output and artefact of it scanned for them.

The secrets: the password of a PostgreSQL `ledger_url`, the partner account's credentials carried in
`partner_api_url` (user:password@), the activation key an operator brings for one host, the keys the
account hands out for the others, and panel user passwords with quotes, spaces and `=`, and one holding
`&<'"` (what HTML, XML and JSON escape). The artefacts: everything under the state dir (journals, events,
host logs, run records), the JSON, JUnit and HTML reports and the metrics file (of `run` and of
`runs show`), every row of the ledger, and what ispagent leaves on the hosts (its config files and
records, /var/lib/ispagent). The outputs: stdout and stderr of every command, the failing ones too.
One run fails on purpose with the `&<'"` password in its step's error, so every report holds it (masked).
Each secret is looked for as written and in every escaped form those formats give it.

Secrets too short to mask (a panel password `status`, a partner password `2026`) are refused when the
inventory is read: one line, exit 2, nothing ordered.
"""

from __future__ import annotations

import html
import json
import secrets
import shlex
import time
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

import pytest
import yaml
from labkit import REPO, ispagent, on_host
from pgkit import pg_schema
from test_install_on_lab import reset_panel

pytestmark = pytest.mark.lab
INSTALL = REPO / "playbooks" / "install.yaml"
HOSTS = 4
PANEL_PASSWORDS = ('it\'s a "secret" = yes', "pw preset=admin $(id)", "Tom&Jerry <b>'quoted\" &amp; more")
MARKUP_PASSWORD = PANEL_PASSWORDS[2]  # & < ' " and an entity: what HTML, XML and JSON escape
HOST_ARTEFACTS = (
    "cat /usr/local/mgr5/etc/ispagent-mgrctl.calls /usr/local/mgr5/etc/ispmgr.conf.d/ispagent.conf "
    "/usr/local/mgr5/etc/ihttpd.conf 2>/dev/null; find /var/lib/ispagent -type f -exec cat {} + 2>/dev/null; true"
)


def _wait_for_key(client, license_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        key = client.get(license_id).key
        if key:
            return key
        time.sleep(0.2)
    raise AssertionError(f"the account gave license {license_id} no key")


def escaped_forms(value: str) -> set[str]:
    """`value` as written and as each output format could carry it unmasked: JSON, HTML and XML escaped,
    shell-quoted, percent-encoded. A hit in any form is a leak."""
    return {
        value,
        html.escape(value),
        html.escape(value, quote=False),
        escape(value, {'"': "&quot;", "'": "&apos;"}),
        escape(value, {'"': "&#34;", "'": "&#39;"}),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        shlex.quote(value),
        quote(value, safe=""),
        quote(value),
    }


def LEAK_PLAYBOOK(tmp_path: Path) -> Path:  # noqa: N802 - a path, named like the constants beside it
    return tmp_path / "leak" / "leak.yaml"


def _failing_run_with_the_markup_password(inventory: Path, tmp_path: Path, state: Path) -> dict:
    """A run whose shell step prints MARKUP_PASSWORD on stderr and fails: the step's error (with it) goes into
    every report, the journal, the host log and the summary; then `runs show` renders that run again."""
    playbook = LEAK_PLAYBOOK(tmp_path)  # it holds the password itself, as the inventory does: not scanned
    playbook.parent.mkdir()
    playbook.write_text(
        yaml.safe_dump(
            {
                "name": "leak",
                "steps": [{"shell": {"command": f"printf '%s\\n' {shlex.quote(MARKUP_PASSWORD)} >&2; exit 3"}}],
            }
        )
    )
    failed = ispagent(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "-v",
        "--report-json",
        str(tmp_path / "leak.json"),
        "--junit",
        str(tmp_path / "leak.xml"),
        "--report-html",
        str(tmp_path / "leak.html"),
        "--metrics-file",
        str(tmp_path / "leak.prom"),
        state_dir=state,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    run_id = json.loads((tmp_path / "leak.json").read_text())["run_id"]
    assert all(
        host["status"] == "failed" and "***" in host["error"]
        for host in json.loads((tmp_path / "leak.json").read_text())["hosts"]
    )
    shown = ispagent(
        "runs",
        "show",
        run_id,
        "--report-json",
        str(tmp_path / "shown.json"),
        "--junit",
        str(tmp_path / "shown.xml"),
        "--report-html",
        str(tmp_path / "shown.html"),
        state_dir=state,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return {"failing run": failed, "runs show": shown}


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
    api_url = service["partner_api_url"].replace(
        "http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@", 1
    )
    client = PartnerClient(settings_from_vars(service))
    ips = {host.address for host in hosts}
    for name in (host.name for host in hosts):
        reset_panel(lab, name)
    for lic in client.list():  # licenses earlier tests left on these hosts in the lab's shared account
        if lic.live and lic.ip in ips:
            client.delete(lic.id)
    operator_license = client.order(
        "lite", "monthly", hosts[0].address, hosts[0].name, "operator-" + secrets.token_hex(4)
    )
    operator_key = _wait_for_key(client, operator_license)
    try:
        with pg_schema() as ledger_url:
            ledger_password = make_url(ledger_url).password
            vars = {
                "edition": "lite",
                "period": "monthly",
                "release": "stable",
                "installer_url": service["installer_url"],
                "partner_api_url": api_url,
                "ledger_url": ledger_url,
                "partner_timeout": 10,
                "license_key_wait": 30,
                "panel_presets": [{"name": "basic", "settings": {"disklimit": 1000}}],
                "panel_users": [
                    {"name": f"user{i}", "password": pw, "preset": "basic"} for i, pw in enumerate(PANEL_PASSWORDS)
                ],
            }
            inventory = tmp_path / "inventory.yaml"  # the one input that holds the secrets: not scanned
            inventory.write_text(
                yaml.safe_dump(
                    {
                        "ssh": {"known_hosts": str(lab.known_hosts_path), "connect_timeout": 5},
                        "defaults": {"user": "root", "identity_file": str(lab.identity_file), "vars": vars},
                        "hosts": {
                            h.name: {
                                "address": h.address,
                                "vars": {"fqdn": h.fqdn, **({"activation_key": operator_key} if h is hosts[0] else {})},
                            }
                            for h in hosts
                        },
                    }
                )
            )
            state = tmp_path / "state"
            run = ["run", str(INSTALL), "-i", str(inventory), "-v"]
            results = {
                "first run": ispagent(
                    *run,
                    "--report-json",
                    str(tmp_path / "first.json"),
                    "--junit",
                    str(tmp_path / "first.xml"),
                    "--report-html",
                    str(tmp_path / "first.html"),
                    "--metrics-file",
                    str(tmp_path / "first.prom"),
                    state_dir=state,
                ),
                "rerun": ispagent(*run, "--report-json", str(tmp_path / "second.json"), state_dir=state),
                "dry run": ispagent(*run, "--dry-run", "--report-json", str(tmp_path / "dry.json"), state_dir=state),
            }
            assert results["first run"].returncode == 0, results["first run"].stdout + results["first run"].stderr
            assert results["rerun"].returncode == 0 and "changed 0" in results["rerun"].stdout, results["rerun"].stdout
            results |= _failing_run_with_the_markup_password(inventory, tmp_path, state)
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
                "wrong API password": [
                    "licenses",
                    "list",
                    "--api-url",
                    api_url.replace(quote(password, safe=""), "Wrong-pw-1"),
                ],
                "unreachable ledger": ["turnover", "--ledger", ledger_url.replace("@127.0.0.1/", "@127.0.0.1:1/")],
            }.items():
                results[name] = ispagent(*args, state_dir=state)
                assert results[name].returncode == (0 if "wrong" not in name and "unreachable" not in name else 1), (
                    name,
                    results[name].stdout,
                    results[name].stderr,
                )
            ledger_rows = _ledger_rows(ledger_url)

        secret_values = {
            "partner password": password,
            "ledger password": ledger_password,
            "operator key": operator_key,
            **{f"key of license {lic.id}": key for lic, key in zip(licensed, keys)},
            **{f"panel password {i}": pw for i, pw in enumerate(PANEL_PASSWORDS)},
        }
        texts = {
            f"{name}: {stream}": getattr(result, stream)
            for name, result in results.items()
            for stream in ("stdout", "stderr")
        }
        inputs = (inventory, LEAK_PLAYBOOK(tmp_path))  # the two files that hold the secrets: not scanned
        files = [path for path in tmp_path.rglob("*") if path.is_file() and path not in inputs]
        texts |= {str(path.relative_to(tmp_path)): path.read_bytes().decode("utf-8", "replace") for path in files}
        texts["ledger rows"] = "\n".join(ledger_rows)
        texts |= {f"{host.name}: ispagent's files": on_host(lab, host.name, HOST_ARTEFACTS).stdout for host in hosts}
        assert any(path.suffix == ".log" for path in files) and any(path.name == "events.jsonl" for path in files)
        assert len(ledger_rows) > 10 and all(texts[f"{h.name}: ispagent's files"] for h in hosts)
        forms = {secret: escaped_forms(value) for secret, value in secret_values.items()}
        hits = [
            (secret, where)
            for secret, values in forms.items()
            for where, text in texts.items()
            if any(value in text for value in values)
        ]
        assert hits == []
        assert {"leak.json", "leak.xml", "leak.html", "leak.prom", "shown.json", "shown.xml", "shown.html"} <= {
            path.name for path in files
        }
        assert texts["leak.html"].count("***") >= 1 and texts["leak.xml"].count("***") >= 1  # masked, not left out
        print(
            f"\nsecret scan of a full install run (first run, rerun, dry run) on {HOSTS} lab hosts: "
            f"{len(secret_values)} secrets x ({len(files)} files, {len(ledger_rows)} ledger rows, "
            f"{HOSTS} hosts' ispagent files, {len(results) * 2} outputs of {len(results)} commands): {len(hits)} hits"
        )
    finally:
        for lic in client.list():
            if lic.ip in ips and lic.live:
                client.delete(lic.id)
        for host in hosts:
            reset_panel(lab, host.name)


@pytest.mark.parametrize("where, short", [("panel password", "status"), ("partner password", "2026")])
def test_a_secret_too_short_to_mask_is_refused_in_one_line_before_anything_is_ordered(lab, tmp_path, where, short):
    from agent.lab.services import inventory_vars
    from agent.partner.client import PartnerClient
    from agent.partner.settings import settings_from_vars

    host = lab.hosts[0]
    service = inventory_vars(lab.dir, lab.bridge_address)
    client = PartnerClient(settings_from_vars(service))
    before = sorted(lic.id for lic in client.list() if lic.live)
    vars = {
        "edition": "lite",
        "period": "monthly",
        "release": "stable",
        **service,
        "ledger_path": str(tmp_path / "ledger.sqlite"),
    }
    if where == "panel password":
        vars["panel_users"] = [{"name": "user0", "password": short, "preset": "basic"}]
    else:
        user = Path(service["partner_credentials_file"]).read_text().split(":", 1)[0]
        credentials = tmp_path / "partner.cred"
        credentials.write_text(f"{user}:{short}\n")
        credentials.chmod(0o600)
        vars["partner_credentials_file"] = str(credentials)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "ssh": {"known_hosts": str(lab.known_hosts_path), "connect_timeout": 5},
                "defaults": {"user": "root", "identity_file": str(lab.identity_file), "vars": vars},
                "hosts": {host.name: {"address": host.address, "vars": {"fqdn": host.fqdn}}},
            }
        )
    )
    state = tmp_path / "state"
    # The partner credentials are read by the commands that call the account (inventory check does not).
    first = (
        ["inventory", "check", "-i", str(inventory)]
        if where == "panel password"
        else ["licenses", "list", "-i", str(inventory)]
    )
    for args in (first, ["run", str(INSTALL), "-i", str(inventory)]):
        result = ispagent(*args, state_dir=state)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert len(errors) == 1 and "too short" in errors[0] and "Traceback" not in result.stderr, result.stderr
        assert not (state / "runs").exists() or not any((state / "runs").iterdir())  # refused before a run began
    assert sorted(lic.id for lic in client.list() if lic.live) == before  # nothing ordered
