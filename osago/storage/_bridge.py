"""Crossing the trio-asyncio bridge to asyncpg: a crossing a Trio cancel scope really
bounds, and what the driver raises when the server or the connection fails."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
import trio_asyncio

__all__ = ["DRIVER_ERRORS", "run_abandonable"]

# InternalClientError ("cannot switch to state ...") is what a connection caught mid-operation
# by a server restart raises; it escaped the translation once and killed workers.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

T = TypeVar("T")


async def run_abandonable(loop: Any, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as an asyncio task and wait for it; a Trio cancellation returns at once.

    Why not ``loop.run_aio_coroutine``: on cancellation it cancels the task and then waits for
    it to finish, and asyncpg, cancelled mid-query, first sends the server a cancel request on
    a new connection: against a database that hangs that took 60 s, so no Trio deadline held.
    Here the caller waits on a separate future; when cancelled, the task is cancelled and left
    to finish in the background (its connection goes back to the pool, or is closed, then).
    """
    task = asyncio.ensure_future(coro, loop=loop)
    waiter: asyncio.Future[T] = loop.create_future()

    def relay(done: asyncio.Future[T]) -> None:
        failure = None if done.cancelled() else done.exception()  # marks it retrieved
        if waiter.done():
            return  # abandoned: nobody waits for this result any more
        if done.cancelled():
            waiter.cancel()
        elif failure is not None:
            waiter.set_exception(failure)
        else:
            waiter.set_result(done.result())

    def abandon(w: asyncio.Future[T]) -> None:
        if w.cancelled():
            task.cancel()

    task.add_done_callback(relay)
    waiter.add_done_callback(abandon)
    result: T = await trio_asyncio.run_aio_future(waiter)
    return result
