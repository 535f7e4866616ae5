"""Secrets never leave the process in clear: every log line, report and error passes `mask`.

Values are registered where they enter (inventory vars, credentials files), so the code that prints
does not have to know which strings are secret.
"""

from __future__ import annotations

import threading

MASK = "***"
_MIN_LENGTH = 4  # masking "a" or "1" everywhere would garble output and protect nothing

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()


def register_secret(value: object) -> None:
    """Mark `value` as secret: from now on `mask` replaces it wherever it appears."""
    global _ordered
    text = str(value) if value is not None else ""
    if len(text) < _MIN_LENGTH:
        return
    with _lock:
        if text in _secrets:
            return
        _secrets.add(text)
        # Longest first, so a secret that contains another is masked whole.
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def mask(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def forget_secrets() -> None:
    """Clear the registry (tests only)."""
    global _ordered
    with _lock:
        _secrets.clear()
        _ordered = ()
