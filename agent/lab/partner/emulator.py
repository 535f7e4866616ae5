"""The partner emulator itself: its state directory, its account, its server, its plug-ins.

On start it writes DIR/credentials (0600, "user:password" of the lab's account) and
DIR/admin-token (0600, for `/admin/...`); the account and licenses are in DIR/partner.sqlite, the
fault profile in DIR/faults.json.
"""

from __future__ import annotations

import argparse
import secrets
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.lab.partner.extensions import AdminRoute, EmulatorExtension, extensions_from_environment, load_extension
from agent.lab.partner.faults import Faults, FaultSettings
from agent.lab.partner.files import read_or_create, write_private
from agent.lab.partner.rules import ApiError
from agent.lab.partner.server import HEAD_DEADLINE, READ_TIMEOUT, Server, handler_for
from agent.lab.partner.store import AccountStore
from agent.partner.operations import Operation

LAB_USER = "lab-partner@example.com"


class PartnerEmulator:
    """The emulator's state and server. `start()` serves on a thread (tests); `serve_forever()` blocks.

    `extensions` see every API call first and may add admin routes (agent/lab/partner/extensions.py).
    """

    def __init__(
        self,
        state_dir: Path | str,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        read_timeout: float = READ_TIMEOUT,
        head_deadline: float = HEAD_DEADLINE,
        extensions: Iterable[EmulatorExtension] = (),
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = AccountStore(self.state_dir / "partner.sqlite")
        self.password = self.store.ensure_account(LAB_USER)
        self.admin_token = read_or_create(self.state_dir / "admin-token", secrets.token_hex(16))
        write_private(self.state_dir / "credentials", f"{LAB_USER}:{self.password}\n")
        self.fault_settings = FaultSettings(self.state_dir / "faults.json")
        self.extensions = list(extensions)
        self.calls: dict[str, int] = {}
        self.injected: dict[str, int] = {}  # faults injected, by kind: error, reset, 429, drop FUNC
        self.refused: dict[int, int] = {}  # requests refused by the HTTP layer, by status
        self.calls_lock = threading.Lock()
        self.server = Server(listen, handler_for(self, read_timeout, head_deadline))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/billmgr"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials"

    def start(self) -> PartnerEmulator:
        # stop() waits for the serving loop to notice, up to one poll interval: 0.5 s by default,
        # paid by every test that starts an emulator.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault profile (written to faults.json, so a running process sees it too)."""
        self.fault_settings.set(**faults)

    def faults(self) -> Faults:
        return self.fault_settings.current()

    def count(self, table: dict, key: Any) -> None:
        with self.calls_lock:
            table[key] = table.get(key, 0) + 1

    def authenticate(self, params: Mapping[str, str]) -> str:
        """The account `authinfo=user:password` names; the API's auth error otherwise."""
        user, _, password = params.get("authinfo", "").partition(":")
        account = self.store.account(user)
        if account is None or not secrets.compare_digest(account["password"].encode(), password.encode()):
            raise ApiError("auth")
        return user

    def admits(self, operation: Operation | None, params: Mapping[str, str]) -> bool:
        return all(extension.admit(operation, params) for extension in self.extensions)

    def loses_answer(self, operation: Operation | None, params: Mapping[str, str]) -> bool:
        return any(extension.loses_answer(operation, params) for extension in self.extensions)

    def admin_routes(self) -> dict[str, AdminRoute]:
        """`/admin/faults` (the lab's documented fault profiles) and the extensions' routes."""
        routes: dict[str, AdminRoute] = {"faults": self._faults_route}
        for extension in self.extensions:
            routes.update(extension.admin_routes(self))
        return routes

    def _faults_route(self, query: Mapping[str, str], body: Any) -> dict:
        self.set_faults(**(body or {}))
        return {"ok": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ISPsystem partner-account (BILLmanager) API emulator")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=READ_TIMEOUT,
        metavar="SECONDS",
        help=f"how long a connection may stay silent (default {READ_TIMEOUT:g})",
    )
    parser.add_argument(
        "--head-deadline",
        type=float,
        default=HEAD_DEADLINE,
        metavar="SECONDS",
        help=f"how long a request's line and headers may take in all (default {HEAD_DEADLINE:g})",
    )
    parser.add_argument(
        "--extension",
        action="append",
        default=None,
        metavar="SPEC",
        help="a plug-in, module:Name or path/to/file.py:Name (repeatable; default: "
        "$ISPAGENT_PARTNER_EXTENSIONS, comma-separated)",
    )
    options = parser.parse_args(argv)
    host, _, port = options.listen.rpartition(":")
    specs = options.extension if options.extension is not None else extensions_from_environment()
    emulator = PartnerEmulator(
        options.state_dir,
        (host, int(port)),
        read_timeout=options.read_timeout,
        head_deadline=options.head_deadline,
        extensions=[load_extension(s) for s in specs],
    )
    shown = f", extensions {', '.join(specs)}" if specs else ""
    print(f"partner emulator on {emulator.url}, state in {options.state_dir}{shown}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
