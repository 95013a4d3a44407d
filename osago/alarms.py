"""Many tasks sleeping until their own times, on one timer.

A worker holds thousands of exchanges that wait between polls or safety checks. With
``trio.sleep_until`` each wait is a cancel scope (two sets in its CancelStatus, the scope,
the frames of sleep_until and sleep_forever): over a kilobyte per waiting exchange, most of
what one held in memory besides its own state. :class:`Alarms` keeps one heap entry per
sleeper instead and one task that sleeps until the earliest entry and wakes everything due
(sleepers due together wake together). Times are Trio's clock, so MockClock governs them
as it does sleep_until.

A sleeper stays cancellable (its caller's scopes still apply): a cancelled sleeper's entry
is blanked and dropped when its time comes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from functools import partial
from typing import Any

import trio

__all__ = ["Alarms"]


def _blank(entry: list[Any], _: Any) -> trio.lowlevel.Abort:
    """A sleeper was cancelled: its entry wakes nobody (a partial: smaller than a closure)."""
    entry[2] = None
    return trio.lowlevel.Abort.SUCCEEDED


class Alarms:
    """``await alarms.sleep_until(t)``: like ``trio.sleep_until``, for many sleepers at once.

    Start :meth:`run` in a nursery before anyone sleeps; a sleeper waits for it otherwise.
    """

    def __init__(self) -> None:
        # [when, order, task]: the order keeps entries comparable when times tie; a cancelled
        # sleeper's task is set to None in place (heap entries are never removed early).
        self._heap: list[list[Any]] = []
        self._order = itertools.count()
        self._timer: trio.CancelScope | None = None

    def __len__(self) -> int:
        """Entries in the heap, cancelled ones until their time included."""
        return len(self._heap)

    async def sleep_until(self, when: float) -> None:
        """Return at (or just after) Trio time ``when``; at once, with a checkpoint, if due."""
        if when <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        entry = [when, next(self._order), trio.lowlevel.current_task()]
        heapq.heappush(self._heap, entry)
        if self._timer is not None and when < self._timer.deadline:
            self._timer.deadline = when  # the timer sleeps until the earliest entry
        await trio.lowlevel.wait_task_rescheduled(partial(_blank, entry))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wake sleepers as their times come, until cancelled."""
        task_status.started()
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                task = heapq.heappop(heap)[2]
                if task is not None:
                    trio.lowlevel.reschedule(task)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._timer:
                await trio.sleep_forever()
            self._timer = None
