"""The asyncio loop asyncpg runs on: trio-asyncio's, running ready callbacks in batches.

Why: trio-asyncio 0.16 runs one asyncio callback per pass of its main-loop task, and each pass
opens a cancel scope and takes a Trio checkpoint (python-trio/trio-asyncio#44). A query is a
chain of callbacks, each queued by the one before (task step, write, future, wake-up), so
every link cost a whole Trio scheduler batch: an ``epoll_wait``, the deadline check and a task
switch. Counted with a Trio instrument in a worker at 10 calculations/s over 50 s, the loop's
task took 43 000 of its 113 000 task steps; with batches 7 000 of 75 000, and the scheduler's
passes fell from 90 000 to 40 000. ``bench/bridge.py``: CPU per one-statement crossing
573-614 -> 311-318 us.

:func:`open_batching_loop` is ``trio_asyncio.open_loop`` whose main loop, after the callback it
waited for, also runs every callback already queued (those that callback queued included), up
to :data:`BATCH`, before it yields to Trio again. Callbacks run in the order they were queued,
as before; a due timer ends the batch (the library's next pass runs it), and so does an async
handle (a Trio task to start). ``BATCH`` bounds how long Trio tasks wait behind asyncio
callbacks.

Its ``call_soon`` skips the library's inspection of each callback (:func:`_call_soon`).

This reads trio-asyncio's private parts (``_q_recv``, ``_timers``, ``AsyncHandle``,
``_queue_handle``);
pyproject pins ``trio-asyncio<0.17``, and ``tests/unit/test_loop.py`` fails if they change.
"""

from __future__ import annotations

import asyncio
import heapq
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio
from sniffio import thread_local as sniffio_library
from trio_asyncio._handles import AsyncHandle

__all__ = ["BATCH", "open_batching_loop"]

BATCH = 64
"""At most this many callbacks, after the one waited for, run in one pass of the loop's task."""


_ORIGINAL = trio_asyncio.TrioEventLoop._main_loop_one


async def _main_loop_one(self: Any, no_wait: bool = False) -> None:
    """The library's pass (wait for one callback, run it), then the ready ones after it."""
    await _ORIGINAL(self, no_wait)
    if no_wait:  # the shutdown drain: one callback per call, as the library expects
        return
    timers = self._timers
    receive = self._q_recv.receive_nowait
    for _ in range(BATCH):
        if timers and timers[0]._when <= self.time():
            return  # due: the library's next pass pops and runs it
        try:
            handle = receive()
        except trio.WouldBlock:
            return
        # The three kinds the library's pass tells apart, handled as it handles them.
        if isinstance(handle, asyncio.TimerHandle):
            heapq.heappush(timers, handle)
        elif isinstance(handle, AsyncHandle):  # a Trio task to start: a checkpoint anyway
            handle._context.run(self._nursery.start_soon, handle._run, name=handle._callback)
            await handle._started.wait()
            return
        elif not handle._cancelled:
            previous, sniffio_library.name = sniffio_library.name, "asyncio"
            try:
                handle._run()  # exceptions go to the loop's handler; TrioAsyncioExit stops it
            finally:
                sniffio_library.name = previous


def _call_soon(self: Any, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
    """trio-asyncio's ``call_soon`` without its check that ``callback`` is no coroutine
    function, which asyncio itself makes only in debug mode: ``inspect`` on every callback
    was 7.5 % of a crossing's CPU (``bench/bridge.py`` under py-spy)."""
    handle = asyncio.Handle(callback, args, self, context=context)
    self._queue_handle(handle)
    return handle


@asynccontextmanager
async def open_batching_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    """``trio_asyncio.open_loop()`` whose main loop runs ready callbacks in batches."""
    async with trio_asyncio.open_loop() as loop:
        # The running main loop looks the method up on every pass: it takes this from the next.
        loop._main_loop_one = types.MethodType(_main_loop_one, loop)
        loop.call_soon = types.MethodType(_call_soon, loop)
        yield loop
