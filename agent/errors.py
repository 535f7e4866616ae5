"""Every error a user can cause or meet, each with a message they can act on.

The CLI turns an `IspagentError` into one line on stderr and its `exit_code`; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, choices: Iterable[object], *, cutoff: float = 0.6) -> str | None:
    """`did you mean 'x'?` for the choice closest to `word` (a typo's intended spelling), or None."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'?" if close else None


class IspagentError(Exception):
    """Base of every expected failure. `str(error)` is the one line shown to the user."""

    exit_code = 1


class InputError(IspagentError):
    """Bad input from the user: inventory, playbook, options, templates. Nothing was touched."""

    exit_code = 2


class InventoryError(InputError):
    """The inventory cannot be used as written. The message names file, line, key and the fix."""


class PlaybookError(InputError):
    """The playbook cannot be used as written. The message names file, line, key and the fix."""


class StepRegistryError(InputError):
    """A step plug-in cannot be used: defined twice, or not loadable. The message names where."""


class RunAborted(IspagentError):
    """The run stopped before finishing every host: fail threshold reached, or its lock is held."""

    exit_code = 3


class StateDirError(IspagentError):
    """The state directory (journal, locks, default ledger) cannot be written: disk full, read-only."""


class LabError(IspagentError):
    """The local lab could not be brought up, inspected or torn down."""


class TransportError(IspagentError):
    """Talking to a host over SSH failed."""


class HostUnreachable(TransportError):
    """The host could not be reached or authenticated: it is reported as unreachable, not failed."""


class HostKeyMismatch(HostUnreachable):
    """The host presented a key that differs from the known one: possibly a man in the middle."""


class UnknownHostKey(HostUnreachable):
    """The host is not in known_hosts and the policy does not allow adding it."""


class CommandTimeout(TransportError):
    """A remote command ran longer than its timeout."""


class StepFailed(IspagentError):
    """A step could not do its work on one host. Stops that host only."""


class PartnerError(IspagentError):
    """The partner account (ISPsystem's BILLmanager API) refused or failed a call."""


class PartnerConfigError(InputError):
    """The partner settings (URL, region, credentials, pricelists) cannot be used as given."""


class PartnerAuthFailed(PartnerError):
    """The account refused the credentials: fix the credentials file or environment variable."""


class PartnerPaymentRequired(PartnerError):
    """Ordering and renewing are blocked (unpaid invoice or insufficient funds): pay, then rerun."""


class PartnerBadIp(PartnerError):
    """The account will not put a license on this IP."""


class PartnerNotFound(PartnerError):
    """No such license in the account."""


class PartnerTransient(PartnerError):
    """The call did not get a usable answer (timeout, reset, HTTP 5xx): it may or may not have happened."""


class PartnerCallNotSent(PartnerTransient):
    """The connection was refused before the request was sent: the call certainly did not happen."""


class LedgerError(IspagentError):
    """The ledger store cannot be opened or holds something inconsistent."""


class LicenseConflict(IspagentError):
    """The account's licenses for a host contradict what is wanted; ordering would risk a duplicate."""


class PanelSettingsError(InputError):
    """An ISPmanager install setting (inventory or playbook var) cannot be used as written."""


class InstallerFailed(StepFailed):
    """The vendor's install.sh could not be fetched, started or finished. `failure_class` says why."""

    def __init__(self, message: str, failure_class: str = "unknown") -> None:
        super().__init__(message)
        self.failure_class = failure_class


class HostLocked(LedgerError):
    """Another ispagent process is licensing this host right now."""


class ProgramError(InputError):
    """program.yaml cannot be used as written: the message names file, line, key and the fix."""


class BillingFileError(InputError):
    """A billing CSV cannot be imported: names the file, the line and the fix; nothing was imported."""


class ClaimLost(IspagentError):
    """This control node no longer holds a host of a shared rollout (its lease ran out, another node
    took the host, or the rollout's database is gone): it stops acting on that host."""
