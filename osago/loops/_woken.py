"""The loop both background workers share: work, then sleep until a NOTIFY, a time, or stop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from osago._aio import wait_any
from osago.errors import BrokerError, StoreError
from osago.storage import Store

__all__ = ["run_woken"]


async def run_woken(
    store: Store,
    channel: str,
    stop: trio.Event,
    step: Callable[[], Awaitable[float]],
    *,
    tick: float,
    log: logging.Logger,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``step`` until ``stop``, again whenever ``channel`` is notified.

    ``step`` returns the Trio time it wants to run again at (``inf``: only when woken).
    A drift-free safety tick every ``tick`` seconds catches lost notifications and leases
    run out; a store or broker error is logged and retried at the next tick. Started once
    LISTEN is in place, so nothing committed after ``started()`` goes unnoticed.
    """
    async with store.listen(channel) as wake:
        task_status.started()
        next_tick = trio.current_time()
        while not stop.is_set():
            next_tick = max(next_tick + tick, trio.current_time())
            try:
                wake_at = min(next_tick, await step())
            except (StoreError, BrokerError) as exc:
                log.warning("%s; retrying at the next tick", exc)
                wake_at = next_tick
            with trio.move_on_at(wake_at):
                await wait_any(wake.wait, stop.wait)
