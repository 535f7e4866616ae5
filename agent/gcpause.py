"""Pausing Python's cyclic garbage collector while a large batch of acyclic data is built.

Building a million billing rows, or the 20 000 licenses of a partner's account, allocates hundreds
of thousands of dicts, tuples and objects that hold no cycles. Each 700 allocations start a young
collection and every few of those a full one, which walks every object of the process (in a run
with its modules, clients and hosts loaded, about 0.1 s each): some 20 of them took 2 s of the 20 s
a million-row billing import took. Reference counting frees such data as it always does; only the
search for cycles waits until the batch is built.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """No cyclic collection inside the block; as it was after it. Process-wide: other threads'
    cycles are found by the first collection after the block (one that was already paused stays so)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
