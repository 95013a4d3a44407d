"""Batcher: calls queued while one runs share the next call; each caller gets its own."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.lowlevel
import trio.testing

from osago.batching import Batcher, Deferred
from osago.errors import StoreError
from tests.cycles import cyclic_garbage


async def test_calls_queued_together_share_one_batch_and_each_gets_its_result_by_key() -> None:
    batches: list[list[tuple[str, int]]] = []

    async def many(items: Sequence[tuple[str, int]]) -> dict[str, int]:
        batches.append(list(items))
        await trio.lowlevel.checkpoint()  # so callers queue behind the first batch
        return {name: n * 10 for name, n in items if name != "gone"}

    batcher: Batcher[tuple[str, int], int | None] = Batcher(
        many, default=None, key=lambda item: item[0]
    )
    results: dict[str, int | None] = {}

    async def call(name: str, n: int) -> None:
        results[name] = await batcher((name, n))

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        for name, n in [("a", 1), ("b", 2), ("gone", 3), ("c", 4)]:
            nursery.start_soon(call, name, n)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()

    assert results == {"a": 10, "b": 20, "gone": None, "c": 40}
    assert len(batches) <= 2  # the first call alone at once, the rest together
    assert sorted(i for b in batches for i in b) == [("a", 1), ("b", 2), ("c", 4), ("gone", 3)]


async def _lingering(
    linger: float, calls: Sequence[tuple[int, float]], *, statement: float = 0.0
) -> tuple[list[tuple[float, list[int]]], dict[int, int | None]]:
    """Calls ``(n, after)`` of a ``Batcher(linger=linger)`` whose batches take ``statement``
    seconds: each batch (its start, from the first call, and its items) and each result."""
    batches: list[tuple[float, list[int]]] = []

    async def many(items: Sequence[int]) -> dict[int, int]:
        batches.append((trio.current_time(), list(items)))
        if statement:
            await trio.sleep(statement)
        return {n: -n for n in items}

    batcher: Batcher[int, int | None] = Batcher(many, default=None, linger=linger)
    results: dict[int, int | None] = {}

    async def call(n: int, after: float) -> None:
        await trio.sleep(after)
        results[n] = await batcher(n)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        for n, after in calls:
            nursery.start_soon(call, n, after)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    return [(round(at - start, 3), items) for at, items in batches], results


async def test_a_lingering_batcher_gathers_calls_that_come_within_its_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Three within the linger of the first, one after it.
    batches, results = await _lingering(0.02, [(1, 0.0), (2, 0.005), (3, 0.015), (4, 0.05)])
    assert results == {1: -1, 2: -2, 3: -3, 4: -4}
    assert batches == [(0.02, [1, 2, 3]), (0.07, [4])]


async def test_a_call_that_queued_while_a_batch_ran_waits_its_linger_from_its_own_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The linger bounds how long a call waits for company: one that came while the runner
    # was busy has waited part of it already (an answer's user is waiting too).
    # 2 comes at 0.012, while 1's batch runs (0.01 to 0.018): its linger ends at 0.022.
    batches, _ = await _lingering(0.01, [(1, 0.0), (2, 0.012)], statement=0.008)
    assert batches == [(0.01, [1]), (0.022, [2])]


async def test_a_deferred_says_how_long_its_oldest_unwritten_item_has_waited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the api's admission reads of its job publisher: the oldest item not yet written,
    through a batch cut in the middle of an add, and after a failed write (given up)."""
    go = trio.Event()
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        await go.wait()
        written.append(items)
        if 4 in items:
            raise StoreError("write", "down")

    deferred: Deferred[int] = Deferred("t", write, linger=0.0, cleanup_timeout=1.0, max_batch=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(deferred.run)
        assert deferred.oldest_wait() == 0.0
        deferred.add([1, 2, 3])
        await trio.sleep(1.0)
        deferred.add([4])
        deferred.add([])  # nothing to wait for: no entry
        await trio.sleep(0.5)
        assert deferred.oldest_wait() == 1.5  # items 1, 2 in the stuck write
        go.set()
        await trio.testing.wait_all_tasks_blocked()
        assert written == [[1, 2], [3, 4]]
        assert deferred.oldest_wait() == 0.0  # 4's write failed: given up, not waiting
        deferred.add([5])
        await trio.sleep(0.25)
        assert written[-1] == [5]
        assert deferred.oldest_wait() == 0.0
        nursery.cancel_scope.cancel()


async def _busy_linger_run(
    calls: list[tuple[int, float]],
) -> tuple[list[tuple[float, list[int]]], dict[int, float]]:
    """Each call ``(n, at)`` made at Trio time ``at`` of a Batcher with a 10 ms busy linger:
    its batches (when, what) and when each call was answered."""
    batches: list[tuple[float, list[int]]] = []

    async def many(items: Sequence[int]) -> dict[int, int]:
        batches.append((trio.current_time(), list(items)))
        return {n: n for n in items}

    batcher: Batcher[int, int | None] = Batcher(many, default=None, busy_linger=0.01)
    answered: dict[int, float] = {}

    async def call(n: int, at: float) -> None:
        await trio.sleep_until(at)
        assert await batcher(n) == n
        answered[n] = trio.current_time()

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n, at in calls:
                callers.start_soon(call, n, at)
        nursery.cancel_scope.cancel()
    return batches, answered


async def test_a_busy_linger_waits_for_company_only_while_calls_come_faster_than_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    # Idle: a call every 100 ms, each answered at once, alone.
    idle = [start + 0.1 * k for k in range(5)]
    # Busy: a call every 2 ms from 1 s on.
    busy = [start + 1.0 + 0.002 * k for k in range(60)]
    # Idle again after a pause.
    late = [start + 2.0, start + 2.5]
    at = idle + busy + late
    batches, answered = await _busy_linger_run(list(enumerate(at)))

    for n in range(5):
        assert answered[n] == at[n]  # no wait while idle
    # Once the gaps' average is under the linger (about ten calls in), ~5 calls a batch.
    last_busy = set(range(5 + 30, 5 + 60))
    busy_batches = [items for _, items in batches if last_busy & set(items)]
    assert len(busy_batches) <= 8
    assert all(answered[n] - at[n] <= 0.01 + 1e-9 for n in range(len(at)))
    for n in (65, 66):
        assert answered[n] == at[n]  # one long pause: at once again


async def test_calls_that_come_together_are_one_arrival_for_the_busy_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker's message brings ten jobs at once: bursts 100 ms apart are idle (each burst
    one batch at once), bursts 2 ms apart are busy (the linger gathers several)."""
    start = trio.current_time()
    idle = [start + 0.1 * k for k in range(10)]
    busy = [start + 2.0 + 0.002 * k for k in range(40)]
    calls = [(10 * k + j, at) for k, at in enumerate(idle + busy) for j in range(10)]
    batches, answered = await _busy_linger_run(calls)

    for k, at in enumerate(idle):
        assert [answered[10 * k + j] for j in range(10)] == [at] * 10  # no wait while idle
    late = [b for t, b in batches if t >= start + 2.0 + 0.05]
    assert max(len(b) for b in late) >= 30  # busy: bursts gathered


async def test_a_failed_batch_leaves_no_cycle_for_the_collector() -> None:
    # Every caller of a failed batch raises its error: were a caller's frame (or the
    # runner's) to hold it too, it would wait for a full collection, minutes away.
    async def many(items: Sequence[int]) -> dict[int, int]:
        raise StoreError("read", "down")

    batcher: Batcher[int, int | None] = Batcher(many, default=None)
    with cyclic_garbage() as found:
        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            for i in range(3):
                try:
                    await batcher(i)
                except StoreError:
                    pass
                else:
                    raise AssertionError("the batch's error was not raised")
            nursery.cancel_scope.cancel()
    assert [o for o in found if isinstance(o, StoreError)] == []
