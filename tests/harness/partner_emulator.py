"""The partner emulator as the tests drive it: an order gate and admin routes for counters and
accounts, as plug-ins (agent/lab/partner/extensions.py), so that none of it ships in the product.

In process: `HarnessEmulator(dir)` has both, the gate at `.order_gate`. In the lab's emulator
process (harness/chaos*.py and lab tests talk to it over HTTP): `lab up` with
$ISPAGENT_PARTNER_EXTENSIONS set to `LAB_EXTENSIONS` loads them (tests/conftest.py does so).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.lab.partner import EmulatorExtension, PartnerEmulator
from agent.lab.partner.extensions import EXTENSIONS_ENV

# Loaded by file path: the lab's emulator runs from the repository, tests/ is not a package on its path.
LAB_EXTENSIONS = f"{Path(__file__).resolve()}:OrderGate,{Path(__file__).resolve()}:LabAdmin"
__all__ = ["EXTENSIONS_ENV", "LAB_EXTENSIONS", "HarnessEmulator", "LabAdmin", "LostOrderAnswers", "OrderGate"]


class OrderGate(EmulatorExtension):
    """Holds confirmed orders past the first N until released: a test can stop the agent between two
    orders, knowing which, instead of guessing with sleeps. Held orders are refused unprocessed
    (connection reset) when the gate is released with `drop=True`."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._limit: int | None = None
        self._dropping = False
        self.passed = 0
        self.held = threading.Event()  # set once an order waits at the gate

    def hold_after(self, orders: int) -> None:
        with self._changed:
            self._limit, self._dropping, self.passed = orders, False, 0
            self.held.clear()

    def release(self, drop: bool = False) -> None:
        with self._changed:
            self._limit, self._dropping = None, drop
            self._changed.notify_all()

    def admit(self, operation, params: Mapping[str, str]) -> bool:
        if operation is None or operation.name != "order":
            return True
        return self.enter()

    def enter(self, timeout: float = 120.0) -> bool:
        """Wait for the order's turn; False: refuse it unprocessed."""
        with self._changed:
            if self._limit is not None and self.passed >= self._limit:
                self.held.set()
                self._changed.wait_for(lambda: self._limit is None or self.passed < self._limit, timeout)
                if self._dropping:
                    return False
            self.passed += 1
            return True

    def admin_routes(self, emulator) -> dict:
        return {"order-gate": self._route}

    def _route(self, query: Mapping[str, str], request: Any) -> dict:
        """`/admin/order-gate`: {"hold_after": N} holds, {"release": true, "drop": false} lets go, {}
        only reads; the answer is the gate's state, for a lab run driven from another process."""
        request = request or {}
        if "hold_after" in request:
            self.hold_after(int(request["hold_after"]))
        elif request.get("release"):
            self.release(drop=bool(request.get("drop", False)))
        with self._changed:
            return {"passed": self.passed, "held": self.held.is_set(), "holding": self._limit is not None}


class LostOrderAnswers(EmulatorExtension):
    """Loses the answers of the next N orders done (commit-then-drop), so that a test under random
    faults knows the agent met a lost order answer instead of hoping the dice threw one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0

    def lose_next(self, orders: int) -> None:
        with self._lock:
            self._left = orders

    def loses_answer(self, operation, params: Mapping[str, str]) -> bool:
        if operation is None or operation.name != "order":
            return False
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class LabAdmin(EmulatorExtension):
    """`/admin/account` (make or change an account), `/admin/calls` (counters, `?reset=1` clears the
    calls), `/admin/licenses` (every license, keys left out): what a harness in another process reads."""

    def admin_routes(self, emulator: PartnerEmulator) -> dict:
        def account(query: Mapping[str, str], data: Any) -> dict:
            password = emulator.store.ensure_account(
                data["user"], data.get("password"), float(data.get("balance", 100000))
            )
            emulator.store.update_account(data["user"], **{k: data[k] for k in ("balance", "unpaid") if k in data})
            return {"user": data["user"], "password": password}

        def calls(query: Mapping[str, str], data: Any) -> dict:
            with emulator.calls_lock:
                reply = {
                    "calls": dict(emulator.calls),
                    "injected": dict(emulator.injected),
                    "refused": {str(k): v for k, v in emulator.refused.items()},
                }
                if query.get("reset"):
                    emulator.calls.clear()
            return reply

        def licenses(query: Mapping[str, str], data: Any) -> list:
            return [{k: v for k, v in lic.items() if k != "lickey"} for lic in emulator.store.licenses()]

        return {"account": account, "calls": calls, "licenses": licenses}


class HarnessEmulator(PartnerEmulator):
    """A PartnerEmulator with the order gate (`.order_gate`), lost order answers on demand
    (`.lost_order_answers`) and the harness's admin routes."""

    def __init__(self, state_dir, **options: Any) -> None:
        self.order_gate = OrderGate()
        self.lost_order_answers = LostOrderAnswers()
        extensions = [self.order_gate, self.lost_order_answers, LabAdmin(), *options.pop("extensions", ())]
        super().__init__(state_dir, extensions=extensions, **options)
