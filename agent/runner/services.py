"""What the hosts of one run share: ledgers, partner-account clients, the order breaker, install.sh downloads.

Created when a run starts and closed with it, so a second run in the same process (a scheduler, a
test) starts with a fresh breaker, fresh clients and no open database engines.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, Sequence, TypeVar

if TYPE_CHECKING:
    from agent.installer.download import InstallerScripts
    from agent.ledger import LicenseLedger
    from agent.licensing.ensure import OrderBreaker
    from agent.partner.client import PartnerClient
    from agent.partner.settings import PartnerSettings, PartnerVars

T = TypeVar("T")


class RunServices:
    """Opened lazily, on first use by a step: a smoke playbook never loads the database layer."""

    def __init__(self) -> None:
        self._installer_scripts: InstallerScripts | None = None
        self._lock = threading.Lock()
        self._ledgers: dict[str, LicenseLedger] = {}
        self._clients: dict[tuple, PartnerClient] = {}
        self._credentials: dict[tuple[Path | None, tuple[str, str] | None], tuple[str, str]] = {}
        self._breaker: OrderBreaker | None = None
        self._shared: dict[Hashable, Any] = {}

    @property
    def installer_scripts(self) -> InstallerScripts:
        """install.sh downloads, one per URL per run (made on first use: urllib loads the email package)."""
        from agent.installer.download import InstallerScripts

        with self._lock:
            if self._installer_scripts is None:
                self._installer_scripts = InstallerScripts()
            return self._installer_scripts

    @property
    def breaker(self) -> OrderBreaker:
        """The run's order breaker: a refusal for payment stops ordering for the rest of this run only."""
        from agent.licensing.ensure import OrderBreaker

        with self._lock:
            if self._breaker is None:
                self._breaker = OrderBreaker()
            return self._breaker

    def shared(self, key: Hashable, make: Callable[[], T]) -> T:
        """What `make` returns, made once per run for `key` and shared by every host (compiled templates,
        local files). What `make` raises is not kept: the next host tries again."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = make()
            return self._shared[key]

    def local_file(self, search: Sequence[Path], src: str) -> bytes:
        """The bytes of the local file `src` in `search`, read once per run: every host gets the same
        bytes, even if the file is edited while the run goes on. A problem raises StepFailed (and is
        looked at again by the next host)."""
        from agent.errors import StepFailed
        from agent.runner.localfiles import read_local_file

        search = tuple(search)
        return self.shared(("local file", search, src), lambda: read_local_file(search, src, StepFailed))

    def ledger(self, location: str | Path) -> LicenseLedger:
        """The ledger at `location`, opened (and migrated) once per run."""
        from agent.ledger import LicenseLedger

        key = str(Path(location).absolute()) if isinstance(location, Path) else str(location)
        with self._lock:
            if key not in self._ledgers:
                self._ledgers[key] = LicenseLedger(location)
            return self._ledgers[key]

    def partner_settings(self, partner: PartnerVars) -> PartnerSettings:
        """`partner` with its credentials, read once per run ($ISPAGENT_PARTNER_AUTHINFO, the URL or the file)."""
        from agent.partner.settings import read_credentials

        source = (partner.credentials_file, partner.url_credentials)
        with self._lock:
            if source not in self._credentials:
                self._credentials[source] = read_credentials(*source)
            return partner.with_credentials(self._credentials[source])

    def partner(self, partner: PartnerVars) -> PartnerClient:
        """The run's client for this account: hosts of the run share it (and its call counts)."""
        from agent.partner.client import PartnerClient

        settings = self.partner_settings(partner)
        key = (settings.api_url, settings.user, settings.password, settings.output, settings.timeout,
               tuple(sorted(settings.pricelists.items())))
        with self._lock:
            if key not in self._clients:
                self._clients[key] = PartnerClient(settings)
            return self._clients[key]

    def close(self) -> None:
        with self._lock:
            ledgers, self._ledgers = list(self._ledgers.values()), {}
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        for ledger in ledgers:
            ledger.close()
