"""Patience: an exchange outlives a blip of its insurer (or of this box).

The insurer's guard (retry, budget, breaker, bulkhead, attempt timeout) decides about one
call, in a second or two. When it gives up on a *transient* failure -- the breaker open,
attempts or the retry budget spent on timeouts, 5xx or a full bulkhead -- the user's
deadline is often most of a minute away. Before, the exchange ended there: a 5-second stall
of the insurers cost 698 and 1 138 of 4 000 offers at 10 calculations/s (`bench/capacity.py
--stall 5`, realistic profile), though every insurer answered again within seconds. Now
the exchange waits and asks again, until the deadline:

- the breaker open: until the breaker changes state (its trials closed it) or its
  ``retry_after``, whichever is first; then a jitter of up to one ``min_interval``, so the
  exchanges that waited do not all call at the same instant;
- any other transient failure, the ``n``-th in a row::

      delay(n) = uniform(0.5, 1) * min(max_gap, min_interval * 2 ** (n - 1))

It gives up (the error propagates: the exchange is unavailable or failed) when the next call
could not start before the deadline, so an insurer down for longer is still reported before
the user's wait ends, and at once when its breaker's next trial is past the deadline. After
the deadline (the late window) a failure ends the exchange at once. A permanent failure
(:class:`~osago.errors.InsurerRejected`: a 4xx or a protocol break) is never waited on.

Patience is for a blip, not for an outage: a breaker that has been open (through its
reopenings) for ``outage`` seconds or more is not waited for; the exchange is unavailable
at once. Why: a waiting exchange holds its job unacknowledged, a slot of the worker's
prefetch. With one insurer of ten down for the whole run, 10 calculations/s held ~550 such
jobs for most of a minute each; the workers' prefetch (then 500) filled, jobs queued, and
the api refused 60 of 600 calculations with both cores mostly idle (`bench/capacity.py
--profile realistic --out delta`).

The load it adds is bounded: an open breaker lets no call through, and each waiting
exchange asks at most once per ``delay(n)``, which doubles. An exchange waiting for a
breaker holds a cancel scope and an event wait (only then: other waits are alarms).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import trio

from osago.errors import CircuitOpen, InsurerUnavailable, ResilienceError

__all__ = ["MAX_GAP", "Breaker", "patiently"]

T = TypeVar("T")

# The longest wait between two asks after transient failures, seconds.
MAX_GAP = 8.0


class Breaker(Protocol):
    def down_for(self) -> float: ...

    async def wait_for_change(self) -> None: ...


async def patiently(
    call: Callable[[], Awaitable[T]],
    *,
    breaker: Breaker,
    min_interval: float,
    outage: float,
    deadline: float,
    sleep_until: Callable[[float], Awaitable[None]],
    note: Callable[[str], None],
) -> T:
    """``await call()``, asked again after transient failures until ``deadline`` (Trio's
    clock) as the module says; the last error propagates when no time is left."""
    failures = 0
    while True:
        try:
            return await call()
        except CircuitOpen as exc:
            now = trio.current_time()
            if now + exc.retry_after >= deadline:
                raise
            if (down := breaker.down_for()) >= outage:
                note(f"breaker open for {down:.1f}s: an outage, not waited for")
                raise
            note(f"breaker open: waiting for it, up to {exc.retry_after:.1f}s")
            with trio.move_on_at(now + exc.retry_after):
                await breaker.wait_for_change()
            wake = trio.current_time() + random.uniform(0.0, min_interval)
        except (InsurerUnavailable, ResilienceError) as exc:
            failures += 1
            ceiling = min(MAX_GAP, min_interval * 2 ** (failures - 1))
            wake = trio.current_time() + random.uniform(0.5, 1.0) * ceiling
            if wake >= deadline:
                raise
            note(f"{exc}: asking again in {wake - trio.current_time():.1f}s")
        if wake >= deadline:  # the jitter after a breaker's change ran past it
            return await call()
        await sleep_until(wake)
