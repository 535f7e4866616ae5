"""Exactly-once licensing (agent/licensing/plan.py, ensure.py): the decision, then ensure_license against the emulator,
alone and with a run's shared view of the account (agent/partner/account_view.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from partnerkit import fill_account, live_licenses, start_emulator

from agent.errors import LicenseConflict, PartnerPaymentRequired, PartnerTransient
from agent.ledger import LicenseLedger
from agent.licensing.breaker import LedgerOrderBreaker, LocalOrderBreaker
from agent.licensing.ensure import LicenseWork, ensure_license
from agent.licensing.plan import WantedLicense, plan_license
from agent.partner.account_view import AccountView
from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus
from agent.partner.settings import settings_from_vars

WANT = WantedLicense("h1", "198.18.0.2", "h1.lab.example", "lite", "monthly")


def _lic(id, ip="198.18.0.2", edition="lite", status=LicenseStatus.ACTIVE, licname="h1", remoteid=""):
    return AccountLicense(
        id, ip, licname, status, {"lite": "55227", "pro": "55228"}[edition], edition, "2027-01-01", remoteid
    )


@pytest.mark.parametrize(
    "account, kwargs, action, license_id",
    [
        ([], {}, "ordered", None),
        ([_lic("5")], {"server_licid": "5"}, "existing", "5"),
        # A panel running a license this account does not hold: never buy one it will not use.
        ([], {"server_licid": "4000013"}, "none", None),
        ([_lic("5")], {"server_licid": "4000013"}, "none", None),
        ([], {"server_licid": "0"}, "ordered", None),
        ([_lic("5")], {"ledger_license_id": "5"}, "existing", "5"),
        ([_lic("5")], {}, "adopted", "5"),
        ([_lic("5", status=LicenseStatus.DELETED)], {}, "ordered", None),
        ([_lic("5", ip="0.0.0.0", licname="free.lic", status=LicenseStatus.SUSPENDED)], {}, "ordered", None),
        (
            [_lic("5", ip="0.0.0.0", licname="free.lic", status=LicenseStatus.SUSPENDED)],
            {"reuse_free": True},
            "reused",
            "5",
        ),
        ([_lic("5", ip="0.0.0.0", edition="pro", licname="free.lic")], {"reuse_free": True}, "ordered", None),
        (
            [_lic("5", ip="0.0.0.0", licname="free.lic")],
            {"reuse_free": True, "taken": frozenset({"5"})},
            "ordered",
            None,
        ),
    ],
)
def test_plan_license(account, kwargs, action, license_id):
    plan = plan_license(WANT, account, **kwargs)
    assert (plan.action, plan.license.id if plan.license else None) == (action, license_id)


def test_plan_forgets_a_ledger_license_the_account_lost():
    plan = plan_license(WANT, [], ledger_license_id="5")
    assert (plan.action, plan.stale_ledger_id) == ("ordered", "5")


@pytest.mark.parametrize(
    "account, kwargs, words",
    [
        ([_lic("5"), _lic("6")], {}, "holds 2 licenses for 198.18.0.2"),
        ([_lic("5", ip="198.18.0.99", remoteid="isp-1")], {"remoteid": "isp-1"}, "change-ip 5 198.18.0.2"),
        ([_lic("5", edition="pro")], {}, "inventory wants lite"),
    ],
)
def test_plan_refuses_to_guess(account, kwargs, words):
    with pytest.raises(LicenseConflict, match=words):
        plan_license(WANT, account, **kwargs)


@pytest.fixture
def account(tmp_path):
    emulator = start_emulator(tmp_path / "partner")
    yield emulator
    emulator.stop()


def _client(emulator) -> PartnerClient:
    settings = settings_from_vars(
        {"partner_api_url": emulator.url, "partner_credentials_file": str(emulator.credentials_file)}
    )
    return PartnerClient(settings, sleep=lambda s: None)


def _work(emulator, tmp_path, wanted=WANT, breaker=None, **kwargs) -> LicenseWork:
    view = kwargs.pop("view", None)
    client = kwargs.pop("client", None) or (view.client if view else _client(emulator))
    ledger = kwargs.pop("ledger", None) or LicenseLedger(tmp_path / "ledger.sqlite")
    return LicenseWork(
        client=client,
        view=view,
        ledger=ledger,
        wanted=wanted,
        address=wanted.ip,
        settle=0.05,
        sleep=lambda s: None,
        breaker=breaker or LocalOrderBreaker(),
        **kwargs,
    )


def test_order_then_rerun_finds_it(account, tmp_path):
    account.set_faults(key_delay=0.3)  # the key comes later: polled
    first = ensure_license(LicenseWork(**{**_work(account, tmp_path).__dict__, "sleep": __import__("time").sleep}))
    assert first.action == "ordered" and first.key.startswith(first.id + "-")
    again = ensure_license(_work(account, tmp_path))
    assert (again.action, again.id, again.key) == ("existing", first.id, first.key)
    assert account.calls["soft.order.param"] == 1


def test_commit_then_drop_is_found_by_remoteid_not_ordered_again(account, tmp_path):
    account.set_faults(drop_rate=1.0, functions=["soft.order.param"])
    grant = ensure_license(_work(account, tmp_path))
    assert grant.action == "ordered" and account.calls["soft.order.param"] == 1
    assert len(live_licenses(account)) == 1


def test_crash_after_the_order_left_is_recovered_as_our_order(account, tmp_path):
    work = _work(account, tmp_path)
    host = work.ledger.host("h1", WANT.ip, WANT.fqdn)
    work.ledger.begin_order(host, WANT.ip, "lite", "monthly")
    work.client.order("lite", "monthly", WANT.ip, WANT.fqdn, host.remoteid)  # ...and then the process died
    grant = ensure_license(work)
    assert grant.action == "ordered" and account.calls["soft.order.param"] == 1
    assert work.ledger.order_intent("h1").state == "done"


def test_5xx_on_every_order_never_leaves_a_duplicate(account, tmp_path):
    account.set_faults(error_rate=1.0, functions=["soft.order.param"])
    with pytest.raises(PartnerTransient, match="rerun"):
        ensure_license(_work(account, tmp_path))
    assert live_licenses(account) == []
    account.set_faults()
    assert ensure_license(_work(account, tmp_path)).action == "ordered"
    assert len(live_licenses(account)) == 1


def test_unpaid_account_is_asked_once_for_many_hosts(account, tmp_path):
    account.store.update_account("lab-partner@example.com", unpaid=1)
    breaker = LocalOrderBreaker()
    wanted = [WantedLicense(f"h{i}", f"198.18.0.{i + 1}", f"h{i}.lab.example", "lite", "monthly") for i in range(1, 11)]
    client = _work(account, tmp_path).client

    def one(item):
        try:
            ensure_license(_work(account, tmp_path, item, breaker, client=client))
        except PartnerPaymentRequired as error:
            return str(error)

    with ThreadPoolExecutor(10) as pool:
        errors = list(pool.map(one, wanted))
    assert all("unpaid invoice" in e and "pay the invoice, then rerun" in e for e in errors)
    assert account.calls["soft.order.param"] == 1


def test_two_workers_on_one_host_order_once(account, tmp_path):
    account.set_faults(latency=[0.05, 0.05])
    barrier = threading.Barrier(2)

    def one(_):
        barrier.wait()
        return ensure_license(_work(account, tmp_path)).action

    with ThreadPoolExecutor(2) as pool:
        actions = sorted(pool.map(one, range(2)))
    assert actions == ["existing", "ordered"] and len(live_licenses(account)) == 1


def test_reuse_free_moves_a_parked_license_and_resumes_it(account, tmp_path):
    work = _work(account, tmp_path, reuse_free=True)
    parked = work.client.order("lite", "monthly", "198.18.0.50", "old", "")
    work.client.set_ip_and_name(parked, ip="0.0.0.0", licname="free.lic")
    work.client.suspend(parked)
    grant = ensure_license(work)
    assert (grant.action, grant.id) == ("reused", parked)
    lic = work.client.get(parked)
    assert (lic.ip, lic.licname, lic.status) == (WANT.ip, WANT.fqdn, LicenseStatus.ACTIVE)
    assert account.calls["soft.order.param"] == 1  # only the setup's


def test_installed_panel_with_a_foreign_license_orders_nothing(account, tmp_path):
    grant = ensure_license(_work(account, tmp_path, server_licid="4000013"))
    assert (grant.action, grant.id, grant.key) == ("none", "4000013", None)
    assert account.calls.get("soft.order.param", 0) == 0


def test_two_inventory_names_of_one_server_order_once(account, tmp_path):
    """The host lock is the server's (its IP), not the inventory name's: two inventories naming one
    server differently, run at once, buy one license."""
    account.set_faults(latency=[0.05, 0.05])
    barrier = threading.Barrier(2)
    names = [WANT, WantedLicense("web-a", WANT.ip, WANT.fqdn, "lite", "monthly")]

    def one(wanted):
        barrier.wait()
        return ensure_license(_work(account, tmp_path, wanted)).action

    with ThreadPoolExecutor(2) as pool:
        actions = sorted(pool.map(one, names))
    assert actions == ["adopted", "ordered"] and len(live_licenses(account)) == 1


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_unpaid_account_stops_every_agent_on_the_ledger_until_a_probe_order_passes(account, tmp_path):
    """Two agents (their own breakers, one ledger): the second never asks the unpaid account; once
    paid, one probe order is let through and clears the breaker for both."""
    account.store.update_account("lab-partner@example.com", unpaid=1)
    clock = _Clock()
    first_agent = LedgerOrderBreaker(LicenseLedger(tmp_path / "ledger.sqlite"), clock)
    second_agent = LedgerOrderBreaker(LicenseLedger(tmp_path / "ledger.sqlite"), clock)
    hosts = [WantedLicense(f"h{i}", f"198.18.0.{i + 1}", f"h{i}.lab.example", "lite", "monthly") for i in range(1, 5)]
    with pytest.raises(PartnerPaymentRequired, match="pay the invoice"):
        ensure_license(_work(account, tmp_path, hosts[0], first_agent))
    with pytest.raises(PartnerPaymentRequired, match=r"ordering stopped since .* UTC: .*unpaid invoice"):
        ensure_license(_work(account, tmp_path, hosts[1], second_agent))
    assert account.calls["soft.order.param"] == 1

    account.store.update_account("lab-partner@example.com", unpaid=0)  # paid: still stopped until the probe
    clock.now += 5
    with pytest.raises(PartnerPaymentRequired, match="tried again at"):
        ensure_license(_work(account, tmp_path, hosts[1], second_agent))
    clock.now += 30
    assert ensure_license(_work(account, tmp_path, hosts[1], second_agent)).action == "ordered"  # the probe
    assert ensure_license(_work(account, tmp_path, hosts[2], first_agent)).action == "ordered"  # cleared for all
    assert account.calls["soft.order.param"] == 3
    assert [e["kind"] for e in first_agent.ledger.events() if e["kind"].startswith("breaker.")] == [
        "breaker.tripped",
        "breaker.cleared",
    ]


def test_a_probe_is_taken_by_one_agent_only(tmp_path):
    clock = _Clock()
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    agents = [LedgerOrderBreaker(LicenseLedger(tmp_path / "ledger.sqlite"), clock) for _ in range(5)]
    agents[0].trip("acct", "unpaid invoice")
    clock.now += 31
    passed = 0
    for agent in agents:
        try:
            agent.admit("acct")
            passed += 1
        except PartnerPaymentRequired:
            pass
    assert passed == 1 and ledger.breaker("acct") is not None


# -- one view of the account per run (agent/partner/account_view.py) ------------------------------

FLEET = [
    WantedLicense(f"web{i}", f"198.18.{i // 200}.{i % 200 + 2}", f"web{i}.lab.example", "lite", "monthly")
    for i in range(40)
]


def _fleet_run(emulator, tmp_path, view, hosts=FLEET, workers=10):
    """ensure_license for every host, `workers` at once, on one view and one ledger (as a run does);
    what each host got, or the error it ended with."""
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    breaker = LocalOrderBreaker()

    def one(wanted):
        try:
            return ensure_license(_work(emulator, tmp_path, wanted, breaker, view=view, ledger=ledger)).action
        except (PartnerTransient, LicenseConflict) as error:
            return error

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip((w.host_name for w in hosts), pool.map(one, hosts)))


def _one_live_license_per_host(emulator, hosts=FLEET):
    live = [lic for lic in live_licenses(emulator) if not lic["licname"].startswith("other-")]
    assert sorted(lic["ip"] for lic in live) == sorted(w.ip for w in hosts), "one license per host, no duplicate"


def test_a_noop_rerun_over_40_hosts_lists_a_20000_license_account_once(account, tmp_path):
    fill_account(account, 20_000)
    first = _fleet_run(account, tmp_path, AccountView(_client(account)))
    assert set(first.values()) == {"ordered"}
    ordering_lists = account.calls["soft"]
    # Orders are decided on lists sent after each host's lock; hosts waiting at once share one.
    assert ordering_lists < len(FLEET), "a list per ordering host: the lists are not shared"
    account.calls.clear()

    view = AccountView(_client(account))
    again = _fleet_run(account, tmp_path, view)
    assert set(again.values()) == {"existing"}
    assert dict(account.calls) == {"soft": 1, "soft.edit": len(FLEET)}  # one list, then each host's key
    assert view.lists == 1
    _one_live_license_per_host(account)


@pytest.mark.parametrize(
    "faults",
    [
        {"drop_rate": 0.3},  # committed, answer lost: orders, moves, reads alike
        {"reset_rate": 0.2, "error_rate": 0.2},  # refused before anything happens
        {"drop_rate": 0.15, "reset_rate": 0.1, "error_rate": 0.1, "functions": ["soft.order.param", "soft"]},
    ],
)
def test_faults_on_a_shared_view_never_buy_a_second_license(account, tmp_path, faults):
    fill_account(account, 2_000)
    account.set_faults(**faults)
    view = AccountView(_client(account))
    for _ in range(6):  # reruns until every host has its license, as an operator would
        results = _fleet_run(account, tmp_path, view)
        if all(isinstance(result, str) for result in results.values()):
            break
    else:
        pytest.fail(f"hosts still without a license after 6 runs: {results}")
    account.set_faults()
    _one_live_license_per_host(account)
    ledger = LicenseLedger(tmp_path / "ledger.sqlite")
    assert sorted(lic.ip for lic in ledger.licenses()) == sorted(w.ip for w in FLEET)


def test_a_stale_view_looks_again_before_it_orders(account, tmp_path):
    """Two agents on one ledger: the second listed the account before the first ordered. Its view says
    the hosts have nothing; under each host's lock it lists again, finds the license, buys none."""
    hosts = FLEET[:8]
    late = AccountView(_client(account))
    assert late.licenses() == []  # listed now, before any order
    assert set(_fleet_run(account, tmp_path, AccountView(_client(account)), hosts).values()) == {"ordered"}
    orders = account.calls["soft.order.param"]
    assert set(_fleet_run(account, tmp_path, late, hosts).values()) == {"existing"}
    assert account.calls["soft.order.param"] == orders == len(hosts)
    assert late.lists >= 2
    _one_live_license_per_host(account, hosts)


def test_a_license_gone_since_the_view_was_listed_is_not_handed_on(account, tmp_path):
    """The view says the host has license L; someone deleted L since. The host reads L before handing
    its key on, sees it gone, and orders from a fresh list."""
    first = ensure_license(_work(account, tmp_path))
    view = AccountView(_client(account))
    assert [lic.id for lic in view.near(WANT.ip)] == [first.id]
    _client(account).delete(first.id)  # not through the view's client: the view cannot know
    grant = ensure_license(_work(account, tmp_path, view=view))
    assert grant.action == "ordered" and grant.id != first.id and grant.key.startswith(grant.id + "-")
    assert [lic["id"] for lic in live_licenses(account)] == [int(grant.id)]


def test_the_runs_own_writes_keep_the_view_current_without_a_list(account, tmp_path):
    client = _client(account)
    view = AccountView(client)
    assert view.licenses() == []
    ordered = client.order("lite", "monthly", "198.18.0.9", "h9.lab.example", "isp-9")
    client.set_ip_and_name(ordered, ip="198.18.0.10", licname="h10.lab.example")
    client.suspend(ordered)
    assert [(lic.id, lic.ip, lic.remoteid, lic.status) for lic in view.near("198.18.0.10")] == [
        (ordered, "198.18.0.10", "isp-9", LicenseStatus.SUSPENDED)
    ]
    assert view.near("198.18.0.9") == []
    client.resume(ordered)
    assert view.near("198.18.0.10", "isp-9")[0].status == LicenseStatus.ACTIVE
    client.delete(ordered)
    assert view.near("198.18.0.10", "isp-9") == []
    assert account.calls["soft"] == 1 and view.lists == 1


def test_an_uncertain_write_and_age_make_the_view_list_again(account, tmp_path):
    now = [0.0]
    client = _client(account)
    view = AccountView(client, max_age=60, clock=lambda: now[0])
    view.licenses()
    account.set_faults(drop_rate=1.0, functions=["soft.order.param"])
    with pytest.raises(PartnerTransient):
        client.order("lite", "monthly", "198.18.0.9", "h9.lab.example", "isp-9")
    account.set_faults()
    assert [lic.remoteid for lic in view.near("198.18.0.9")] == ["isp-9"]  # found by a new list
    assert view.lists == 2
    now[0] += 59
    view.licenses()
    assert view.lists == 2
    now[0] += 2
    view.licenses()
    assert view.lists == 3


def test_a_write_confirmed_while_a_list_is_in_flight_is_not_lost(account, tmp_path):
    """The list may have been read by the account before the write: the write is applied after it lands."""
    writer = _client(account)
    parked = writer.order("lite", "monthly", "198.18.0.50", "old", "")

    class WriteDuringList(PartnerClient):
        def list(self):
            found = super().list()  # the account answered before the move below
            self.set_ip_and_name(parked, ip="198.18.0.51")
            return found

    client = WriteDuringList(writer.settings, sleep=lambda s: None)
    view = AccountView(client)
    assert [lic.id for lic in view.near("198.18.0.51")] == [parked]
    assert view.near("198.18.0.50") == []
