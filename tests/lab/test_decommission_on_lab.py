"""Decommission on the lab: the license is parked as free.lic, and the next install reuses it."""

from __future__ import annotations

import pytest
import yaml
from labkit import REPO, ispagent, on_host, read_report, write_inventory

from agent.lab.services import inventory_vars
from agent.partner.client import PartnerClient
from agent.partner.model import LicenseStatus
from agent.partner.settings import settings_from_vars

pytestmark = pytest.mark.lab

INSTALL = REPO / "playbooks" / "install.yaml"
DECOMMISSION = REPO / "playbooks" / "decommission.yaml"
REMOVE_PANEL = (
    "pid=$(cat /usr/local/mgr5/var/run/ihttpd.pid 2>/dev/null) && kill -9 $pid 2>/dev/null; "
    "rm -rf /usr/local/mgr5 /var/lib/ispagent /var/lib/ispmanager-emulator; true"
)


def _run(playbook, inventory, tmp_path, name, report):
    result = ispagent(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--limit",
        name,
        "--report-json",
        str(tmp_path / report),
        state_dir=tmp_path / "state",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return read_report(tmp_path / report)["hosts"][0]


def test_decommission_parks_the_license_and_the_next_install_reuses_it(lab, tmp_path):
    old, new = lab.hosts[4], lab.hosts[5]
    for host in (old, new):
        on_host(lab, host.name, REMOVE_PANEL)
    service_vars = inventory_vars(lab.dir, lab.bridge_address)
    hosts = {h.name: {"address": h.address, "vars": {"fqdn": h.fqdn, **service_vars}} for h in (old, new)}
    inventory = write_inventory(lab, tmp_path / "inventory.yaml", hosts=hosts)
    account = PartnerClient(settings_from_vars(service_vars))
    try:
        installed = _run(INSTALL, inventory, tmp_path, old.name, "install.json")
        license_id = installed["license"]["id"]
        assert installed["license"]["action"] == "ordered"

        released = _run(DECOMMISSION, inventory, tmp_path, old.name, "decommission.json")
        assert released["status"] == "changed" and released["license_release"] == {"id": license_id, "policy": "park"}
        parked = account.get(license_id)
        assert (parked.status, parked.ip, parked.licname) == (LicenseStatus.SUSPENDED, "0.0.0.0", "free.lic")
        again = _run(DECOMMISSION, inventory, tmp_path, old.name, "decommission-2.json")
        assert again["status"] == "ok"  # idempotent: nothing released twice

        on_host(lab, old.name, REMOVE_PANEL)
        hosts[new.name]["vars"]["reuse_free"] = True
        inventory.write_text(yaml.safe_dump({**yaml.safe_load(inventory.read_text()), "hosts": hosts}))
        orders_before = len([lic for lic in account.list() if lic.live])
        reused = _run(INSTALL, inventory, tmp_path, new.name, "install-new.json")
        assert reused["license"] == {"id": license_id, "edition": "lite", "period": "monthly", "action": "reused"}
        moved = account.get(license_id)
        assert (moved.status, moved.ip) == (LicenseStatus.ACTIVE, new.address)
        assert len([lic for lic in account.list() if lic.live]) == orders_before  # nothing ordered
    finally:
        # Leave the account with no license on these IPs, for the tests that follow.
        for host in (old, new):
            ispagent("run", str(DECOMMISSION), "-i", str(inventory), "--limit", host.name, state_dir=tmp_path / "state")
            on_host(lab, host.name, REMOVE_PANEL)
