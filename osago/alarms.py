"""Many tasks sleeping until their own times, on one timer.

A worker holds thousands of exchanges that wait between polls or safety checks. With
``trio.sleep_until`` each wait is a cancel scope (two sets in its CancelStatus, the scope,
the frames of sleep_until and sleep_forever): over a kilobyte per waiting exchange, most of
what one held in memory besides its own state. :class:`Alarms` keeps one heap entry per
sleeper instead and one task that sleeps until the earliest entry and wakes everything due
(sleepers due together wake together). Times are Trio's clock, so MockClock governs them
as it does sleep_until.

A sleeper stays cancellable (its caller's scopes still apply): a cancelled sleeper's entry
is blanked and dropped when its time comes. :meth:`Alarms.call_at` puts a plain function on
the same heap, for work that only has to start at a time (a hedge's second call): no task
waits for it meanwhile. :func:`shared_alarms` is one Alarms per Trio run, for code that holds
no Alarms of its own.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

__all__ = ["Alarms", "shared_alarms"]

log = logging.getLogger("osago.alarms")


def _blank(entry: list[Any], _: Any) -> trio.lowlevel.Abort:
    """A sleeper was cancelled: its entry wakes nobody (a partial: smaller than a closure)."""
    entry[2] = None
    return trio.lowlevel.Abort.SUCCEEDED


def _forget(entry: list[Any]) -> None:
    entry[2] = None


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

    def call_at(self, when: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` from the timer's task at Trio time ``when`` (at its next turn if due);
        return a function that cancels the call if it has not run yet.

        ``fn`` must not block and should not raise: it runs inside :meth:`run` (a raise is
        logged and dropped). To start work, it starts a task: one started plainly takes the
        timer's context, so :func:`osago.resilience.hedged` passes a copy of its caller's."""
        entry = [when, next(self._order), fn]
        heapq.heappush(self._heap, entry)
        if self._timer is not None and when < self._timer.deadline:
            self._timer.deadline = when
        return partial(_forget, entry)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wake sleepers and make calls as their times come, until cancelled."""
        task_status.started()
        heap = self._heap
        while True:
            now = trio.current_time()
            # Blanked entries go as soon as they reach the top, due or not: the timer then
            # sleeps until the earliest live entry. Why: most hedges are forgotten within
            # milliseconds (their poll answered), and waking for each of them cost a turn of
            # this loop per poll.
            while heap and (heap[0][0] <= now or heap[0][2] is None):
                due = heapq.heappop(heap)[2]
                if type(due) is trio.lowlevel.Task:
                    trio.lowlevel.reschedule(due)
                elif due is not None:
                    try:
                        due()
                    except Exception:
                        log.exception("alarm call %r failed", due)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._timer:
                await trio.sleep_forever()
            self._timer = None


# Why a RunVar and a system task: code deep in a call stack (a hedged poll) needs a timer
# without every caller passing one down, and state per Trio run (not per process) keeps
# tests, each its own run, apart. trio.to_thread's default limiter is a RunVar the same way.
_SHARED: trio.lowlevel.RunVar[Alarms] = trio.lowlevel.RunVar("osago_shared_alarms")


def shared_alarms() -> Alarms:
    """This Trio run's Alarms, started (as a system task) on first use."""
    try:
        return _SHARED.get()
    except LookupError:
        alarms = Alarms()
        trio.lowlevel.spawn_system_task(alarms.run, name="osago shared alarms")
        _SHARED.set(alarms)
        return alarms
