"""Preflight: facts + vars -> verdict (data-driven), and the gather script's output -> facts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from agent.installer.settings import read_install_settings
from agent.panel.hostprobe import parse_host_facts, preflight_of
from agent.panel.preflight_rules import HostFacts, evaluate

DATA = Path(__file__).parents[1] / "data" / "preflight"
CASES = yaml.safe_load((DATA / "cases.yaml").read_text())
GOOD = HostFacts(
    os_id="debian",
    os_version="12",
    os_codename="bookworm",
    arch="x86_64",
    memory_mb=2048,
    hostname="h1.lab.example",
    primary_ipv4="198.18.0.2",
    repository_reachable=True,
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_preflight_facts_give_the_installers_verdict(case):
    facts = case["facts"]
    for key in ("ports_in_use", "helpers_missing"):
        if key in facts:
            facts = {**facts, key: tuple(facts[key])}
    host = replace(GOOD, **facts)
    verdict = evaluate(host, read_install_settings(case.get("vars", {})))
    assert [problem.rule for problem in verdict.problems] == case["rules"]
    if "message" in case:
        assert case["message"] in verdict.problems[0].message
    if "installed" in case:
        assert host.installed is case["installed"]


FIXES = {
    "eol_os": "set allow_eol_os: true",
    "ram": "give the server more RAM",
    "hostname": "or ignore_hostname: true",
    "selinux": "SELINUX=disabled",
    "old_panel": "remove it first",
    "ports": "stop that service",
    "repository_unreachable": "then run again",
    "root": "passwordless sudo",
    "os_repository": "install those packages first",
}


def test_every_problem_names_the_rule_and_the_fix():
    host = replace(
        GOOD,
        os_codename="buster",
        os_version="10",
        memory_mb=100,
        hostname="x",
        selinux_enabled=True,
        old_panel=True,
        ports_in_use=(80,),
        repository_reachable=False,
        repository_error="HTTP 000",
        uid=1000,
        helpers_missing=("wget",),
        distribution_reachable=False,
    )
    problems = evaluate(host, read_install_settings({})).problems
    assert {problem.rule: FIXES[problem.rule] in problem.message for problem in problems} == dict.fromkeys(FIXES, True)


def test_gather_output_parses_to_facts_and_the_state_handed_to_the_license_step():
    facts = parse_host_facts((DATA / "gather_output.txt").read_text())
    assert (facts.family, facts.os_codename, facts.memory_mb, facts.hostname) == (
        "debian",
        "bookworm",
        488,
        "h7.lab.example",
    )
    assert facts.disk_usr_local_mb == 14400 and facts.ports_in_use == (1500,)
    assert facts.repository_reachable is False and "503" in facts.repository_error
    assert (facts.uid, facts.helpers_missing, facts.distribution_reachable) == (1000, ("lsb-release", "gpg"), False)
    assert (facts.distribution_repository, facts.distribution_error) == ("http://198.18.0.1:8080/debian", "HTTP 000")
    state = preflight_of(facts, evaluate(facts, read_install_settings({})))
    assert (state.installed, state.licid, state.panel_name, state.primary_ipv4) == (
        True,
        "4000013",
        "ISPmanager Lite",
        "198.18.0.8",
    )
    with pytest.raises(Exception):
        state.installed = False  # frozen: later steps cannot change what preflight found
