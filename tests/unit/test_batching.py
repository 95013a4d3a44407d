"""Batcher: calls queued while one runs share the next call; each caller gets its own."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.lowlevel
import trio.testing

from osago.batching import Batcher


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
