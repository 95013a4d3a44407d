"""The loop both background workers share: work, then sleep until a NOTIFY, a time, or stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from osago._aio import wait_any
from osago.errors import BrokerError, StoreError
from osago.storage import Store

__all__ = ["run_woken"]


class _Never:
    async def wait(self) -> None:
        await trio.sleep_forever()


@asynccontextmanager
async def _no_listen() -> AsyncIterator[_Never]:
    yield _Never()


async def run_woken(
    store: Store,
    channel: str | None,
    stop: trio.Event,
    step: Callable[[bool], Awaitable[float]],
    *,
    tick: float,
    log: logging.Logger,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``step`` until ``stop``, again whenever ``channel`` is notified (None: tick only).

    ``step(woken)`` returns the Trio time it wants to run again at (``inf``: only when
    woken); ``woken`` is True when a notification (not a time) woke it.
    A drift-free safety tick every ``tick`` seconds catches lost notifications and leases
    run out; a store or broker error is logged and retried at the next tick. Started once
    LISTEN is in place, so nothing committed after ``started()`` goes unnoticed.
    """
    listening = store.listen(channel) if channel is not None else _no_listen()
    async with listening as wake:
        task_status.started()
        next_tick = trio.current_time()
        woken = False
        while not stop.is_set():
            next_tick = max(next_tick + tick, trio.current_time())
            try:
                wake_at = min(next_tick, await step(woken))
            except (StoreError, BrokerError) as exc:
                log.warning("%s; retrying at the next tick", exc)
                wake_at = next_tick
            with trio.move_on_at(wake_at) as timer:
                await wait_any(wake.wait, stop.wait)
            woken = not timer.cancelled_caught
