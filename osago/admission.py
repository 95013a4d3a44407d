"""Admission: the api refuses new calculations while the workers are behind (load shedding).

Why: past what the box can do, jobs wait, and every user waits that much longer before any
insurer is even asked (a 2-core box fed 20 calculations/s for a minute, past its ~15/s: the
median offer came 8.5 s later than the insurer's own time, ``bench/capacity.py``). A quick
503 with ``Retry-After`` lets the core application say so or try later, and keeps the wait of
the calculations taken short.

A job waits in one of three places, and each refuses new calculations:

- in the broker's queue, no worker holding it yet: the queue's messages less those
  dispatched, read with the broker's statistics each second by the api's backlog refresh
  (it needs no worker to report, and a second api sees the same queue);
- in this api, committed but not yet taken by the broker (its job publisher is behind). Why
  this too: with a worker prefetch large enough for slow insurers, a surge past the CPU never
  queues in the broker; it starves every process, and the api's own publishing falls behind.
  At 70/s calm with prefetch 4000 and only the queue's limit, jobs waited 5.8 s (p50) to be
  published, and users 7.8 s more than the insurers' time; with this limit, 0.64 s. The
  oldest unpublished job's wait is read when a POST comes, so it is never stale;
- in a worker, delivered but not yet started: the workers' CPU is the limit, and the jobs
  wait for it inside them (realistic 50/s: 1.1 s p50 from commit to picked up, seen by
  neither limit above). Each worker reports the median of that wait every second
  (:mod:`osago.workload`); the highest fresh report counts, and refuses a share of new
  calculations that grows with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from osago.broker import QueueStats

__all__ = ["Backlog", "Refusal"]


@dataclass(frozen=True)
class Refusal:
    """Why new calculations are refused: where jobs wait (``queue``: for a worker;
    ``publishing``: in this api, for the broker; ``workers``: in a worker, to be started),
    and the reading, for the log."""

    cause: Literal["queue", "publishing", "workers"]
    detail: str


def _none_waiting() -> float:
    return 0.0


@dataclass
class Backlog:
    """The jobs waiting, as last read. ``limit``: queued jobs above which the api refuses new
    calculations; ``max_unpublished``: seconds the oldest job this api has not yet published
    may have waited; ``max_pickup``: the workers' reported pickup wait (seconds) at which it
    refuses every new calculation, a share of them from half of it (:meth:`pickup_share`; 0:
    never refuse on that count, either)."""

    limit: int = 0
    waiting: int = 0
    max_unpublished: float = 0.0
    # Seconds the oldest job this api holds unpublished has waited (its job publisher's).
    unpublished: Callable[[], float] = field(default=_none_waiting)
    max_pickup: float = 0.0
    # The highest fresh pickup wait the workers reported (osago.workload.WorkerLoads).
    pickup: Callable[[], float] = field(default=_none_waiting)
    rng: random.Random = field(default_factory=random.Random)  # who of a share is refused

    def note(self, stats: QueueStats | None) -> None:
        """A fresh reading of the requests queue (None: unreadable, so nothing is refused)."""
        self.waiting = 0 if stats is None else stats.waiting

    def refusal(self) -> Refusal | None:
        """Why a new calculation is refused now; None when it is taken."""
        if 0 < self.limit < self.waiting:
            return Refusal("queue", f"{self.waiting} jobs wait for a worker (limit {self.limit})")
        if self.max_unpublished > 0 and (age := self.unpublished()) > self.max_unpublished:
            return Refusal(
                "publishing",
                f"the oldest job not yet published has waited {age:.1f}s"
                f" (limit {self.max_unpublished:g}s)",
            )
        if self.max_pickup > 0 and self.rng.random() < self.pickup_share(wait := self.pickup()):
            return Refusal(
                "workers",
                f"jobs wait {wait:.2f}s (median) for a worker to start them"
                f" (refusing from {self.max_pickup / 2:g}s, all past {self.max_pickup:g}s)",
            )
        return None

    def pickup_share(self, wait: float) -> float:
        """The share of new calculations refused for a reported pickup wait: none up to half
        of ``max_pickup``, a share growing linearly to all of them at ``max_pickup``.

        Why a share and not all past the limit: the reading comes once a second, so refusing
        everything past it and nothing below it took a second of surge, then refused a
        second of users, and so on (realistic 50/s: accepted jobs still waited 2.3 s p99 to
        start, against a 1 s limit). A share settles where the wait is steady: at twice the
        box's capacity, half refused and the wait at three quarters of the limit."""
        half = self.max_pickup / 2
        return min(1.0, max(0.0, (wait - half) / half))
