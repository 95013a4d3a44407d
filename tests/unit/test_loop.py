"""The batching asyncio loop: asyncio's order and Trio's fairness kept, fewer Trio passes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import trio
import trio.lowlevel
import trio.testing
import trio_asyncio

from osago.storage._loop import BATCH, open_batching_loop


class _Steps(trio.abc.Instrument):
    """Task steps by task name."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


def _chain(
    loop: asyncio.AbstractEventLoop, n: int, ran: list[int], done: asyncio.Future[None]
) -> Callable[[int], None]:
    """n callbacks, each queued by the one before (as a query's are)."""

    def step(i: int) -> None:
        ran.append(i)
        if i + 1 < n:
            loop.call_soon(step, i + 1)
        else:
            done.set_result(None)

    return step


async def test_a_chain_of_callbacks_runs_in_order_in_few_passes_of_the_loop_task() -> None:
    steps = _Steps()
    trio.lowlevel.add_instrument(steps)
    try:
        async with open_batching_loop() as loop:
            await trio.testing.wait_all_tasks_blocked()
            ran: list[int] = []
            done = loop.create_future()
            before = steps.steps.copy()
            loop.call_soon(_chain(loop, 1000, ran, done), 0)
            await trio_asyncio.run_aio_future(done)
            passes = sum((steps.steps - before).values())
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert ran == list(range(1000))
    # One pass per BATCH callbacks, and a few for the waiter; trio-asyncio's own loop takes
    # one per callback (1000).
    assert passes <= 1000 // BATCH + 10


async def test_trio_tasks_run_while_asyncio_keeps_queueing_callbacks() -> None:
    async with open_batching_loop() as loop:
        spins = 0
        spinning = True

        def spin() -> None:
            nonlocal spins
            spins += 1
            if spinning:
                loop.call_soon(spin)  # never idle: asyncio always has a callback ready

        loop.call_soon(spin)
        between: list[int] = []  # callbacks run between two turns of this Trio task
        for _ in range(20):
            before = spins
            await trio.lowlevel.checkpoint()
            between.append(spins - before)
        spinning = False
    # Between two turns of this task the loop's task has at most two passes (Trio may run it
    # last in one scheduler batch and first in the next), each the callback it waited for
    # and a batch after it.
    assert max(between) <= 2 * (BATCH + 1)
    assert sum(between) >= 20 * BATCH / 2  # ...and asyncio still runs in batches


async def test_timers_and_trio_tasks_started_from_asyncio_still_run_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[str] = []

    async def from_trio() -> str:
        await trio.sleep(0.5)
        return "trio task"

    async with open_batching_loop() as loop:

        async def aio() -> None:
            loop.call_later(1.0, got.append, "timer 1s")
            loop.call_later(0.1, got.append, "timer 0.1s")
            loop.call_soon(got.append, "soon")
            got.append(await loop.trio_as_future(from_trio))
            await asyncio.sleep(2.0)
            got.append("slept")

        start = trio.current_time()
        await loop.run_aio_coroutine(aio())
        took = trio.current_time() - start
    assert got == ["soon", "timer 0.1s", "trio task", "timer 1s", "slept"]
    assert 2.5 <= took < 2.6


async def test_an_exception_in_a_callback_reaches_the_loops_handler() -> None:
    seen: list[BaseException | None] = []
    async with open_batching_loop() as loop:
        loop.set_exception_handler(lambda _loop, context: seen.append(context.get("exception")))
        done = loop.create_future()
        loop.call_soon(done.set_result, None)  # the one the pass waits for
        loop.call_soon(lambda: 1 / 0)  # ...and the batch after it
        loop.call_soon(seen.append, None)
        await trio_asyncio.run_aio_future(done)
        await trio.testing.wait_all_tasks_blocked()
    assert isinstance(seen[0], ZeroDivisionError)
    assert seen[1:] == [None]
