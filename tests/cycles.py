"""What CPython's cyclic collector alone would free: objects a block left in reference cycles.

A role's full collections come minutes apart (osago/collector.py), so an object left in a
cycle (an exception whose traceback holds a frame that holds the exception) waits that long
in memory, with every frame and task its traceback holds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cyclic_garbage"]


@contextmanager
def cyclic_garbage() -> Iterator[list[object]]:
    """Collect before the block; after it, the list holds what a collection then found
    unreachable (kept for a look by ``gc.DEBUG_SAVEALL``, then let go)."""
    found: list[object] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
