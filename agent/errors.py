"""Every error a user can cause or meet, each with a message they can act on.

The CLI turns an `IspagentError` into one line on stderr and its `exit_code`; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


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


class RunAborted(IspagentError):
    """The run stopped before finishing every host: fail threshold reached, or its lock is held."""

    exit_code = 3


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
