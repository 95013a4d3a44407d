"""How late this process's Trio loop runs what is due: ``osago_loop_lag_seconds``.

Why: every role is one thread on one loop, and a role short of CPU shows it here before
anywhere else. Its timers fire late, its sockets are read late, and the work queued for
it waits in front of it. A worker about three quarters of a core busy on a two-core box
(calm 50/s on a slow host, docs/capacity-history.md) woke 1/27/112 ms late (p50/p90/p99).
Its jobs then waited in the broker for their frames to be read (p50 0.1 to 0.5 s, p90 up to
2 s), while the box as a whole looked half idle. That was found with a temporary probe;
this is that probe, kept.

The watcher sleeps ``interval`` at a time and observes how far past its due time each
wake-up came. A wake-up of an otherwise idle loop cost 150 us of CPU on this box in its slow
phase, so four a second cost about 0.6 ms a second, and give 1 200 observations for a
5-minute p99.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["LAG_INTERVAL", "watch_loop_lag"]

LAG_INTERVAL = 0.25  # seconds between wake-ups


async def watch_loop_lag(
    observe: Callable[[float], object],
    *,
    interval: float = LAG_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: wake every ``interval`` seconds (drift-free) and ``observe`` how late
    each wake-up came, in seconds. A wake-up later than a whole interval is one observation;
    the next is due an interval after it, not at once (that would observe 0)."""
    task_status.started()
    due = trio.current_time() + interval
    while True:
        await trio.sleep_until(due)
        now = trio.current_time()
        observe(now - due)
        due += interval
        if due <= now:
            due = now + interval
