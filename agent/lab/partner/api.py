"""The emulated account's answers: one handler per operation of agent/partner/operations.py.

A handler is registered against the table by the operation's name (`@handles("order")`), so an
operation cannot be added to the table without the lab answering it: tests/unit/test_partner_emulator.py
fails for an operation that has no handler here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.lab.partner.rendering import Document
from agent.lab.partner.rules import (
    STATUS_ACTIVE,
    STATUS_DELETED,
    STATUS_SUSPENDED,
    TARIFFS,
    ApiError,
    check_ip,
    period_of,
    shown_status,
    tariff,
)
from agent.lab.partner.store import AccountStore
from agent.partner.operations import Operation, named

LAB_PROJECT = "ISPsystem"  # the provider the account belongs to (JBS asks `subaccount project=ISPsystem`)
DONE = Document(values={"ok": None})


@dataclass(frozen=True)
class Call:
    """One authenticated call: whose account, its parameters, and how late keys come (a fault)."""

    store: AccountStore
    account: str
    params: dict[str, str]
    key_delay: float = 0.0

    def license(self) -> dict:
        """The license `elid` names, of this account (not deleted); the API's "missed" otherwise."""
        return self.store.license(self.account, self.params.get("elid", ""))


Handler = Callable[[Call], Document]
HANDLERS: dict[str, Handler] = {}


def handles(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of the operation `name` (a name not in the table fails at import)."""
    operation = named(name)

    def register(handler: Handler) -> Handler:
        HANDLERS[operation.name] = handler
        return handler

    return register


def answer(operation: Operation | None, call: Call) -> Document:
    """The reply to `call` of `operation` (None: a function the API does not know)."""
    if operation is None:
        raise ApiError("func")
    return HANDLERS[operation.name](call)


@handles("list")
def _list(call: Call) -> Document:
    return Document(elems=[fields(lic) for lic in call.store.licenses(call.account) if lic["status"] != STATUS_DELETED])


@handles("get")
def _get(call: Call) -> Document:
    return _record(call.license())


def _checked_order(params: dict[str, str]) -> int:
    """An order's tariff and IP checked as the account checks them; its period in months."""
    tariff(params.get("pricelist"))
    period = period_of(params)
    check_ip(params.get("ip", ""))
    return period


@handles("order_form")
def _order_form(call: Call) -> Document:
    """Without sok the function only describes its form: nothing is ordered."""
    period = _checked_order(call.params)
    return Document(values={"pricelist": call.params["pricelist"], "period": str(period), "ip": call.params["ip"]})


@handles("order")
def _order(call: Call) -> Document:
    params = call.params
    period = _checked_order(params)
    elid = str(
        call.store.order(
            call.account,
            params["pricelist"],
            period,
            params["ip"],
            params.get("licname", ""),
            params.get("remoteid", ""),
            call.key_delay,
        )
    )
    # Each real client reads the id somewhere else: id (WHMCS, Upmind's id.v), item.id (JBS), elid.
    return Document(values={"id": elid, "item.id": elid, "elid": elid})


@handles("move")
def _move(call: Call) -> Document:
    lic = call.license()
    changes = {}
    if "ip" in call.params:
        check_ip(call.params["ip"], allow_unassigned=True)  # 0.0.0.0: parked, as WHMCS frees a license
        changes["ip"] = call.params["ip"]
    for key in ("licname", "remoteid"):
        if key in call.params:
            changes[key] = call.params[key]
    call.store.update_license(lic["id"], **changes)
    return _record(call.store.license(call.account, str(lic["id"])))


@handles("new_key")
def _new_key(call: Call) -> Document:
    """A new key (the old one stops working); an IP or name sent along is applied too."""
    lic = call.license()
    call.store.update_license(lic["id"], lickey=f"{lic['id']}-{secrets.token_hex(12)}")
    return _move(call)


@handles("renew_form")
def _renew_form(call: Call) -> Document:
    lic = call.license()
    return Document(values={"elid": str(lic["id"]), "expiredate": lic["expiredate"]})


@handles("renew")
def _renew(call: Call) -> Document:
    lic = call.license()
    return Document(nested={"newexpiredate": call.store.prolong(call.account, lic, period_of(call.params))})


@handles("change_tariff")
def _change_tariff(call: Call) -> Document:
    lic = call.license()
    tariff(call.params.get("pricelist"))
    call.store.update_license(lic["id"], pricelist=call.params["pricelist"], period=period_of(call.params))
    return DONE


@handles("suspend")
def _suspend(call: Call) -> Document:
    call.store.update_license(call.license()["id"], status=STATUS_SUSPENDED)
    return DONE


@handles("resume")
def _resume(call: Call) -> Document:
    lic = call.license()
    if call.store.account(call.account)["unpaid"]:
        raise ApiError("unpaid")
    call.store.update_license(lic["id"], status=STATUS_ACTIVE if lic["status"] == STATUS_SUSPENDED else lic["status"])
    return DONE


@handles("delete")
def _delete(call: Call) -> Document:
    call.store.update_license(call.license()["id"], status=STATUS_DELETED, ip="0.0.0.0")
    return DONE


@handles("check_ip")
def _check_ip(call: Call) -> Document:
    check_ip(call.params.get("ip", ""))
    if call.store.live_license_on(call.account, call.params["ip"]):
        raise ApiError("ip_taken")
    return DONE


@handles("subaccount")
def _subaccount(call: Call) -> Document:
    project = call.params.get("project", "")
    if project and project.lower() != LAB_PROJECT.lower():
        return Document(elems=[])
    row = call.store.account(call.account)
    return Document(
        elems=[
            {
                "id": "1",
                "name": call.account,
                "project": LAB_PROJECT,
                "balance": f"{row['balance_cents'] / 100:.2f}",
                "currency": "EUR",
            }
        ]
    )


def _record(lic: dict) -> Document:
    return Document(record={"elid": str(lic["id"]), **fields(lic)})


def fields(lic: dict) -> dict[str, str]:
    """A license as soft.edit and soft show it (the key empty until it is issued)."""
    ready = time.time() >= lic["key_ready_at"]
    name = TARIFFS[lic["pricelist"]].name
    return {
        "id": str(lic["id"]),
        "name": name,
        "licname": lic["licname"],
        "ip": lic["ip"],
        "remoteid": lic["remoteid"],
        "lickey": lic["lickey"] if ready else "",
        "status": str(shown_status(lic["status"], ready)),
        "webdomains": "10",
        "createdate": lic["createdate"],
        "expiredate": lic["expiredate"],
        "pricelist": lic["pricelist"],
        "pricelist_name": name,
        "period": str(lic["period"]),
    }


def fetch(store: AccountStore, key: str, source_ip: str) -> tuple[int, dict]:
    """`licctl fetch ispmgr [key]` from a lab host: by key, else by the caller's IP. The license
    is active from then on: a license binds when its server fetches it."""
    lic = store.find_for_fetch(key, source_ip)
    if lic is None:
        return 403, {"error": "Invalid activation key" if key else "You have no commercial license for this IP"}
    store.update_license(lic["id"], status=STATUS_ACTIVE)
    return 200, {
        "licid": str(lic["id"]),
        "panel_name": TARIFFS[lic["pricelist"]].name,
        "expire": lic["expiredate"],
        "ip": lic["ip"],
    }
