"""Admission: the api refuses new calculations while the workers are behind (load shedding).

Why: past what the workers' boxes can do, jobs wait in the broker's queue, and every user
waits that much longer before any insurer is even asked (a 2-core box fed 20 calculations/s
for a minute, past its ~15/s: the median offer came 8.5 s later than the insurer's own time,
``bench/capacity.py``). A quick 503 with ``Retry-After`` lets the core application say so
or try later, and keeps the wait of the calculations taken short. The signal is the jobs no
worker holds yet (the queue's messages less those dispatched), read with the broker's
statistics each second by the api's backlog refresh; it needs no worker to report, and a
second api sees the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from osago.broker import QueueStats

__all__ = ["Backlog"]


@dataclass
class Backlog:
    """The jobs waiting for a worker, as last read; ``limit`` above which the api refuses new
    calculations (0: never)."""

    limit: int = 0
    waiting: int = 0

    def note(self, stats: QueueStats | None) -> None:
        """A fresh reading of the requests queue (None: unreadable, so nothing is refused)."""
        self.waiting = 0 if stats is None else stats.waiting

    @property
    def overloaded(self) -> bool:
        """Whether more jobs wait than the limit allows (never with no limit)."""
        return 0 < self.limit < self.waiting
