"""verify reuses the license.info that preflight read in the same run, and preflight the primary IPv4
that facts read, unless a step that may change the host started between them; run through the
runner's own `run_host` over a ReplayConnection."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from agent.hostsettings import read_host_settings
from agent.inventory.model import Endpoint, Host
from agent.panel.hostprobe import PREFLIGHT, gather_script
from agent.panel.mgrctl import LICENSE_INFO, LicenseInfoReading
from agent.runner.context import HOST_CHANGES, HostContext
from agent.runner.hostrun import run_host
from agent.runner.playbook import load_playbook, playbook_from_data
from agent.runner.services import RunServices
from agent.shipped import templates_dir
from agent.stepkit.panelfiles import PanelConfigParams, planned_files
from agent.transport.hostlog import HostLog
from agent.transport.quoting import command_line
from agent.transport.replay import ExpectedCommand, ReplayConnection

REPO = Path(__file__).resolve().parents[2]
VARS = load_playbook(REPO / "playbooks" / "reprovision.yaml").vars
HOST = Host("h1", Endpoint("198.18.0.2"))
MGRCTL_CALL = "/usr/local/mgr5/sbin/mgrctl -m ispmgr license.info"


def preflight_answer(licid: str) -> ExpectedCommand:
    """The preflight probe's answer on a host with a panel installed (probe=short)."""
    return ExpectedCommand(
        contains=f"lic=$({MGRCTL_CALL} 2>/dev/null)",
        stdout=(
            "os_id=debian\nos_version=12\nos_codename=bookworm\nmgr5=1\nlicense_rc=0\n"
            f"lic.licid={licid}\nlic.panel_name=ISPmanager Lite\nprimary_ipv4=198.18.0.2\nprobe=short\n"
        ),
    )


def verify_answer(sums: list[str], licid: str | None) -> ExpectedCommand:
    """The verify probe's answer; with `licid` the probe must ask mgrctl for license.info, without it must not."""
    listening = "listen=00000000:05DC\n"
    sum_lines = "".join(f"sum.{line}\n" for line in sums)
    if licid is None:
        return ExpectedCommand(
            match=r"\A(?!.*license\.info).*probe=done", stdout=listening + sum_lines + "probe=done\n"
        )
    license = f"license_rc=0\nlic.licid={licid}\nlic.panel_name=ISPmanager Lite\n"
    return ExpectedCommand(contains=MGRCTL_CALL, stdout=listening + license + sum_lines + "probe=done\n")


def run(steps: list, script_of: Callable[[list[str]], list[ExpectedCommand]], tmp_path: Path):
    """`steps` through run_host; `script_of(sums)`: what the host answers, given the rendered files' sums."""
    playbook = playbook_from_data({"vars": VARS, "steps": steps}, REPO / "playbooks")
    vars = dict(playbook.vars)
    log = HostLog(tmp_path / "host.log")
    context = HostContext(
        host=HOST,
        connection=ReplayConnection(HOST),
        dry_run=False,
        source_dirs=[templates_dir()],
        state_dir=tmp_path,
        log=log,
        settings=read_host_settings(vars),
        services=RunServices(),
        vars=vars,
    )
    sums = [
        f"{hashlib.sha256(file.content).hexdigest()}  {file.dest}"
        for file in planned_files(context, PanelConfigParams())
    ]
    connection = context.connection = ReplayConnection(HOST, script_of(sums), log)
    try:
        outcome = run_host(context, playbook.steps, lambda event: None)
        connection.assert_done()
    finally:
        context.services.close()
        log.close()
    return outcome, context, (tmp_path / "host.log").read_text()


def verify_record(outcome):
    return next(record for record in outcome.steps if record.step == "verify")


def test_audit_verify_reuses_license_info_preflight_read(tmp_path: Path):
    outcome, context, log = run(
        ["preflight", "verify"], lambda sums: [preflight_answer("4000013"), verify_answer(sums, None)], tmp_path
    )
    assert outcome.status == "ok", outcome
    assert context.report["verify"]["license"] == {
        "ok": True,
        "detail": "licid 4000013 (no license id recorded by this run)",
    }
    assert context.report["verify"]["edition"]["ok"] is True
    assert context.state.get(LICENSE_INFO) == LicenseInfoReading(
        {"licid": "4000013", "panel_name": "ISPmanager Lite"}, 0
    )
    assert "verify: license.info as preflight read it" in log
    assert log.count("license.info 2>/dev/null") == 1  # one mgrctl on the host, in preflight's probe


def test_verify_reads_license_info_again_after_a_step_that_may_change_the_host(tmp_path: Path):
    steps = ["preflight", {"shell": {"command": "touch /srv/marker", "creates": "/srv/marker"}}, "verify"]
    outcome, context, log = run(
        steps,
        lambda sums: [
            preflight_answer("4000013"),
            ExpectedCommand(contains="touch /srv/marker"),  # the shell step, in one round trip with its guard
            verify_answer(sums, "4000099"),
        ],
        tmp_path,
    )
    assert context.state.get(HOST_CHANGES) == 1
    # The host's own answer counts, not what preflight read before the shell step.
    assert context.report["verify"]["license"]["detail"].startswith("licid 4000099"), context.report
    assert "verify: license.info as preflight read it" not in log
    assert outcome.status == "changed", outcome


FACTS_ANSWER = ExpectedCommand(
    contains="route get 1.1.1.1",
    stdout="os_id=debian\nos_version=12\nhostname=h1\nprimary_ipv4=198.18.0.2\nuser=root\n",
)


def test_preflight_takes_the_primary_ipv4_facts_read_instead_of_starting_ip_again(tmp_path: Path):
    outcome, context, log = run(
        ["facts", "preflight"],
        lambda sums: [
            FACTS_ANSWER,
            # preflight's probe: the address facts read, quoted, and no `ip route get` of its own
            ExpectedCommand(match=r"\A(?!.*route get).*ip4='?198\.18\.0\.2'?\n", stdout=preflight_answer("7").stdout),
        ],
        tmp_path,
    )
    assert outcome.status == "ok", outcome
    assert context.state.get(PREFLIGHT).primary_ipv4 == "198.18.0.2"


def test_preflight_probes_the_address_again_after_a_step_that_may_change_the_host(tmp_path: Path):
    steps = ["facts", {"shell": {"command": "touch /srv/marker", "creates": "/srv/marker"}}, "preflight"]
    outcome, context, log = run(
        steps,
        lambda sums: [
            FACTS_ANSWER,
            ExpectedCommand(contains="touch /srv/marker"),
            ExpectedCommand(contains="route get 1.1.1.1", stdout=preflight_answer("7").stdout),
        ],
        tmp_path,
    )
    assert outcome.status == "changed", outcome
    assert context.state.get(HOST_CHANGES) == 1


def test_an_address_from_facts_reaches_the_probe_quoted():
    hostile = "198.18.0.2'; touch /tmp/owned; '"
    script = gather_script("http://198.18.0.1:8080/", primary_ipv4=hostile)
    assert f"ip4={command_line([hostile])}\n" in script
    assert "route get" not in script
