"""The garbage collector's policy: young collections by allocation, the rest on a clock."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from osago.collector import YOUNG_THRESHOLD, collect_on_clock, settle_collector


@pytest.fixture
def collector_restored() -> Iterator[list[int]]:
    """The process's collector as it was after the test; yields the generations collected."""
    threshold = gc.get_threshold()
    collected: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.callbacks.append(note)
    try:
        yield collected
    finally:
        gc.callbacks.remove(note)
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_young_collections_run_by_allocation_and_the_older_generations_never(
    collector_restored: list[int],
) -> None:
    settle_collector()
    assert gc.get_freeze_count() > 0  # what the role allocated to start is out of sight
    collector_restored.clear()
    # Survivors, as exchanges in flight are: CPython's defaults would collect the middle
    # generation every 10 young collections, and the whole heap every 100.
    kept = [[i] for i in range(60 * YOUNG_THRESHOLD)]
    assert collector_restored.count(0) >= 50
    assert set(collector_restored) == {0}
    del kept  # alive until here, as exchanges in flight are


async def _collections(
    clock: trio.testing.MockClock, stalls: list[float], run: float
) -> list[float]:
    """When ``collect_on_clock(60 s)`` collected over ``run`` seconds (from its start), each
    collection standing the clock on by the next of ``stalls`` (then none)."""
    at: list[float] = []
    left = iter(stalls)

    def collect() -> int:
        at.append(trio.current_time())
        clock.jump(next(left, 0.0))
        return 0

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(collect_on_clock, 60.0, collect=collect))
        await trio.sleep(run)
        nursery.cancel_scope.cancel()
    return [t - start for t in at]


async def test_full_collections_come_on_the_clock_without_drift(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each collection takes 5 s: the next still counts from the schedule.
    assert await _collections(autojump_clock, [5.0, 5.0, 5.0], 200.0) == [60.0, 120.0, 180.0]


async def test_a_collection_that_overslept_an_interval_runs_once_then_keeps_the_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The process stood still for 150 s in the first one (SIGSTOP, a suspended VM).
    assert await _collections(autojump_clock, [150.0], 400.0) == [60.0, 270.0, 330.0, 390.0]
