"""What the hosts of one run share: ledgers, partner-account clients and views, order breakers, install.sh downloads.

Created when a run starts and closed with it, so a second run in the same process (a scheduler, a
test) starts with fresh clients and no open database engines.

Each service is made once per key, outside the registry's own lock: a ledger connecting to its
database and migrating it holds up only the threads that want that ledger, not every thread that
wants any service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from agent.installer.download import InstallerScripts
    from agent.ledger import LicenseLedger
    from agent.licensing.breaker import OrderBreaker
    from agent.partner.account_view import AccountView
    from agent.partner.client import PartnerClient
    from agent.partner.settings import PartnerSettings, PartnerVars

T = TypeVar("T")


class RunServices:
    """Opened lazily, on first use by a step: a smoke playbook never loads the database layer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two dicts below, never held while something is made
        self._made: dict[Hashable, Any] = {}
        self._making: dict[Hashable, threading.Lock] = {}

    def _once(self, key: Hashable, make: Callable[[], T]) -> T:
        """What `make` returns, made once for `key`; what it raises is not kept (the next caller tries again)."""
        with self._lock:
            if key in self._made:
                known: T = self._made[key]
                return known
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._made:
                    made_meanwhile: T = self._made[key]
                    return made_meanwhile
            made = make()
            with self._lock:
                self._made[key] = made
            return made

    @property
    def installer_scripts(self) -> InstallerScripts:
        """install.sh downloads, one per URL per run (made on first use: urllib loads the email package)."""
        from agent.installer.download import InstallerScripts

        return self._once("installer scripts", InstallerScripts)

    def shared(self, key: Hashable, make: Callable[[], T]) -> T:
        """What `make` returns, made once per run for `key` and shared by every host (compiled templates,
        local files). What `make` raises is not kept: the next host tries again."""
        return self._once(("shared", key), make)

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
        return self._once(("ledger", key), lambda: LicenseLedger(location))

    def order_breaker(self, ledger: LicenseLedger) -> OrderBreaker:
        """The order breaker of the accounts recorded in `ledger`, shared with every agent on that ledger."""
        from agent.licensing.breaker import LedgerOrderBreaker

        return self._once(("breaker", id(ledger)), lambda: LedgerOrderBreaker(ledger))

    def partner_settings(self, partner: PartnerVars) -> PartnerSettings:
        """`partner` with its credentials, read once per run ($ISPAGENT_PARTNER_AUTHINFO, the URL or the file)."""
        from agent.partner.settings import read_credentials

        source = (partner.credentials_file, partner.url_credentials)
        return partner.with_credentials(self._once(("credentials", source), lambda: read_credentials(*source)))

    def partner(self, partner: PartnerVars) -> PartnerClient:
        """The run's client for this account: hosts of the run share it (and its call counts)."""
        from agent.partner.client import PartnerClient

        settings = self.partner_settings(partner)
        return self._once(("client", _client_key(settings)), lambda: PartnerClient(settings))

    def account_view(self, partner: PartnerVars) -> AccountView:
        """The run's view of this account (agent/partner/account_view.py): listed once, kept current with
        the writes of the run's client, which it watches from the moment it is made."""
        from agent.partner.account_view import AccountView

        client = self.partner(partner)
        return self._once(("view", _client_key(client.settings)), lambda: AccountView(client))

    def close(self) -> None:
        with self._lock:
            made, self._made = list(self._made.items()), {}
        for key, service in made:
            if isinstance(key, tuple) and key[0] in ("client", "ledger"):
                service.close()


def _client_key(settings: PartnerSettings) -> tuple[Any, ...]:
    return (
        settings.api_url,
        settings.user,
        settings.password,
        settings.output,
        settings.timeout,
        tuple(sorted(settings.pricelists.items())),
    )
