"""The partner API's operations, each declared once: its function, whether it changes the account
(and whether it moves money), its parameters and the shape of its reply.

The client builds its calls from this table (and picks the retry policy from `writes`), the lab's
emulator registers one handler per operation, and the `licenses` command takes its help from it.
A name here is an operation, not a function: `soft.edit` is three operations (read a license,
move or rename it, issue a new key) told apart by `sok` and `clicked_button`, as the API does.
Functions and parameters are those of the facts sheet §4.2 and §8.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

# `sok` confirms a write; without it a function that has a form only describes it (facts §3.1).
CONFIRMATIONS = ("ok", "yes")  # both are sent by real clients (§8)


class ReplyShape(Enum):
    """Where an operation's answer is in the reply document."""

    ORDER_ID = "the new license's id: id (id.v in bjson), item.id or elid"
    RECORD = "one license: bjson `model`, XML at the top of doc"
    RECORDS = "a list: elem[*]"
    NEW_EXPIRY = "newexpiredate in a nested doc (XML /doc/doc/newexpiredate)"
    DONE = "nothing but the absence of an error (an empty ok element)"
    FORM = "the function's form: the values it would use, nothing changed"


@dataclass(frozen=True)
class Operation:
    """One operation of the partner API."""

    name: str  # ours: what the client method, the emulator handler and the CLI call it
    func: str  # the API's function
    writes: bool  # changes the account: sent again only when it provably never left
    moves_money: bool  # debits the balance (skipbasket=on pays at once)
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    reply: ReplyShape = ReplyShape.DONE
    selector: Mapping[str, str] = field(default_factory=dict)  # tells it apart on a shared function
    fixed: Mapping[str, str] = field(default_factory=dict)  # also sent; a request without them still counts
    summary: str = ""

    @property
    def confirmed(self) -> bool:
        """Sent with sok=ok: every write is."""
        return self.writes

    def params(self, **values: str | int | None) -> dict[str, str]:
        """The API parameters of one call: `values` (None: left out) checked against the table,
        then the fixed ones and sok. A missing or unknown name is a bug in the caller: ValueError."""
        given = {name: str(value) for name, value in values.items() if value is not None}
        missing = [name for name in self.required if name not in given]
        unknown = [name for name in given if name not in self.required and name not in self.optional]
        if missing or unknown:
            raise ValueError(f"{self.name} ({self.func}): missing {missing}, unknown {unknown}")
        return {**given, **self.fixed, **self.selector, **({"sok": "ok"} if self.confirmed else {})}

    def matches(self, params: Mapping[str, str]) -> bool:
        """Whether a request with `params`, its func this one's, is this operation."""
        if any(params.get(name) != value for name, value in self.selector.items()):
            return False
        if not _has_form(self.func):  # soft.suspend without sok still suspends (NOC, HostBill send none)
            return True
        return (params.get("sok") in CONFIRMATIONS) == self.confirmed


def _has_form(func: str) -> bool:
    """Whether `func` answers differently with and without sok (a read form and a write)."""
    return len({operation.confirmed for operation in OPERATIONS if operation.func == func}) > 1


_ELID = ("elid",)

OPERATIONS: tuple[Operation, ...] = (
    Operation("list", "soft", writes=False, moves_money=False, reply=ReplyShape.RECORDS,
              summary="Every license of the account."),  # the name is not public: JBS calls `soft` (§4.2)
    Operation("get", "soft.edit", writes=False, moves_money=False, required=_ELID, reply=ReplyShape.RECORD,
              summary="One license, with its activation key."),
    Operation("order", "soft.order.param", writes=True, moves_money=True, required=("pricelist", "period", "ip"),
              optional=("licname", "remoteid"), reply=ReplyShape.ORDER_ID,
              fixed={"skipbasket": "on", "clicked_button": "finish"},
              summary="Order and pay for a license (skipbasket=on debits the balance at once)."),
    Operation("order_form", "soft.order.param", writes=False, moves_money=False, required=("pricelist", "period", "ip"),
              optional=("licname", "remoteid"), reply=ReplyShape.FORM,
              summary="What an order would be, without sok: nothing ordered."),
    Operation("move", "soft.edit", writes=True, moves_money=False, required=_ELID, optional=("ip", "licname", "remoteid"),
              reply=ReplyShape.RECORD, summary="Move a license to another server IP and/or rename it."),
    Operation("new_key", "soft.edit", writes=True, moves_money=False, required=_ELID, reply=ReplyShape.RECORD,
              selector={"clicked_button": "newkey"}, summary="Issue a new activation key (the old one stops working)."),
    Operation("renew", "service.prolong", writes=True, moves_money=True, required=(*_ELID, "period"),
              reply=ReplyShape.NEW_EXPIRY, summary="Prolong a license, paid from the account balance."),
    Operation("renew_form", "service.prolong", writes=False, moves_money=False, required=_ELID, optional=("period",),
              reply=ReplyShape.FORM, summary="A license's expiry before a renewal, without sok: nothing paid."),
    Operation("change_tariff", "service.changepricelist", writes=True, moves_money=False,
              required=(*_ELID, "pricelist", "period"), summary="Switch a license to another edition."),
    Operation("suspend", "soft.suspend", writes=True, moves_money=False, required=_ELID,
              summary="Suspend a license (the panel blocks web login, data kept)."),
    Operation("resume", "soft.resume", writes=True, moves_money=False, required=_ELID,
              summary="Resume a suspended license."),
    Operation("delete", "soft.delete", writes=True, moves_money=False, required=_ELID,
              summary="Delete a license from the account (not reversible)."),
    Operation("check_ip", "soft.checkip", writes=False, moves_money=False, required=("ip",),
              optional=("pricelist", "period"), summary="Whether an IP can take a license (an error if not)."),
    Operation("subaccount", "subaccount", writes=False, moves_money=False, optional=("project",),
              reply=ReplyShape.RECORDS, summary="The account and its balance (JBS asks project=ISPsystem)."),
)  # fmt: skip

BY_NAME: dict[str, Operation] = {operation.name: operation for operation in OPERATIONS}


def named(name: str) -> Operation:
    """The operation called `name` in the table (KeyError for another name: a bug)."""
    return BY_NAME[name]


def identify(params: Mapping[str, str]) -> Operation | None:
    """The operation a request is (its `func`, `sok` and `clicked_button`); None for an unknown function."""
    func = params.get("func", "")
    candidates = [operation for operation in OPERATIONS if operation.func == func and operation.matches(params)]
    # new_key and move are both confirmed soft.edit calls: the one whose selector matched wins.
    return max(candidates, key=lambda operation: len(operation.selector), default=None)
