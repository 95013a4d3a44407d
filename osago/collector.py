"""The cyclic garbage collector's policy in a role: young collections small and often, the
older generations only on a clock.

Why: while CPython's collector runs the event loop stands still, and a collection's pause
grows with the objects it walks. A young collection is due when allocations outnumber
deallocations by the first threshold, and any deallocation counts, an old object's too. In
a busy worker the objects of exchanges that end (old by then) balance those of exchanges
that start, so with the threshold at 10 000 a young collection came only every second or
three and walked every object allocated meanwhile and still alive: 100 000-140 000, 60-157
ms at calm 50/s. The worst 1 % of offers came in clusters, and each cluster lined up with
such a pause (bench/capacity.py with ``--frames``, against the pauses logged).

At CPython's own 700 a young collection walks about a thousand objects, about a
millisecond. What survives it is mostly an exchange in flight, alive for seconds; a
middle or full collection walks all of those (about 70 objects each), about 180 ms in a
worker at calm 50/s, with next to nothing to free: garbage in cycles is rare here (over
10 s at realistic 20/s, with its failing polls, a full collection found 0-33 objects in a
worker and 27 in the api, once ``hedged`` let go of its failures). So the older
generations are collected only by :func:`collect_on_clock`, every ``interval`` seconds:
one such pause in minutes, instead of one every few seconds.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

import trio

__all__ = ["YOUNG_THRESHOLD", "collect_on_clock", "settle_collector"]

log = logging.getLogger("osago.collector")

YOUNG_THRESHOLD = 700  # CPython's default: a young collection walks about this many objects
_NEVER = 2**31 - 1  # older collections are due after this many younger ones: never, here


def settle_collector() -> None:
    """Once a role is up: what it allocated to start (modules, pools, tables) is moved out
    of the collector's sight (``gc.freeze``: no collection walks it again; services.md
    measured about 40 % less push CPU in the notifier with it), young collections stay
    small, and the older generations wait for :func:`collect_on_clock`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, _NEVER, _NEVER)


async def collect_on_clock(
    interval: float,
    *,
    collect: Callable[[], int] = gc.collect,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A full collection every ``interval`` seconds (on Trio's clock, drift-free), until
    cancelled. ``osago_gc_pause_seconds{generation="2"}`` shows each one's pause."""
    task_status.started()
    due = trio.current_time() + interval
    while True:
        await trio.sleep_until(due)
        started = time.perf_counter()
        found = collect()
        log.debug(
            "collector: full collection found %d unreachable objects in %.1f ms",
            found,
            1000 * (time.perf_counter() - started),
        )
        # From the schedule, not from now: a late wake-up does not push the next one later;
        # one that overslept a whole interval (a stopped process) does not run twice.
        due += interval
        if due <= trio.current_time():
            due = trio.current_time() + interval
