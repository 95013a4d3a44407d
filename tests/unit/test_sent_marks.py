"""Published outbox rows are marked sent in batches (deferred writes), none forgotten at
shutdown."""

from __future__ import annotations

from collections.abc import Sequence

import trio
from trio.testing import MockClock

from osago.clock import TrioWallClock
from osago.outbox import sent_marks
from osago.storage import MemoryStore
from tests.factories import new_calculation


class Counting(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[int]] = []

    async def mark_sent(self, ids: Sequence[int], *, now: float) -> None:
        self.calls.append(list(ids))
        await super().mark_sent(ids, now=now)


async def test_marks_of_many_publishes_share_one_transaction(autojump_clock: MockClock) -> None:
    store = Counting()
    for _ in range(3):
        await store.create_calculation(new_calculation(), queue="/queue/q")
    rows = [m.id for m in await store.claim_outbox(now=0.0, lease=30.0, limit=10)]
    marks = sent_marks(store, TrioWallClock(), linger=0.05, cleanup_timeout=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(marks.run)
        for i in rows:  # six publishes within the linger
            marks.add([i])
            await trio.sleep(0.005)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert store.calls == [rows]
    assert await store.claim_outbox(now=100.0, lease=30.0, limit=10) == []  # all marked


async def test_what_is_left_is_marked_on_the_way_out(autojump_clock: MockClock) -> None:
    store = Counting()
    await store.create_calculation(new_calculation(), queue="/queue/q")
    rows = [m.id for m in await store.claim_outbox(now=0.0, lease=30.0, limit=10)]
    marks = sent_marks(store, TrioWallClock(), linger=0.05, cleanup_timeout=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(marks.run)
        nursery.cancel_scope.cancel()
        marks.add(rows)  # published as the role was stopping
    assert sorted(i for call in store.calls for i in call) == sorted(rows)
