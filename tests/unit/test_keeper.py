"""The deadline keeper LISTENs for new calculations only where one can fall due before its
safety tick; either way, each calculation is completed at its deadline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from osago.broker import open_memory_broker
from osago.clock import TrioWallClock
from osago.config import Settings
from osago.events import unpack
from osago.loops import keeper
from osago.roles._deps import ApiDeps
from osago.storage import MemoryStore
from osago.storage._port import Wakeup
from tests.factories import new_calculation

EPOCH = 1_790_000_000.0


class Listening(MemoryStore):
    """A memory store that remembers which channels were listened to."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: list[str] = []

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Wakeup]:
        self.channels.append(channel)
        async with super().listen(channel) as wake:
            yield wake


@pytest.mark.parametrize(("deadline", "listens"), [(60.0, False), (1.5, True)])
async def test_completed_at_the_deadline_listening_only_for_short_ones(
    autojump_clock: MockClock, deadline: float, listens: bool
) -> None:
    settings = Settings(deadline_seconds=deadline, keeper_tick=2.0)
    store = Listening()
    clock = TrioWallClock(EPOCH)
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        completed: list[float] = []

        async def collect(task_status: trio.TaskStatus[None]) -> None:
            async with broker.subscribe(settings.results_topic) as sub:
                task_status.started()
                async for d in sub:
                    if any(json.loads(e)["type"] == "completed" for e in unpack(d.body)):
                        completed.append(clock.now())

        await nursery.start(collect)
        deps = ApiDeps(settings, trio.Event(), clock, store=store, broker=broker, insurers=())
        await nursery.start(keeper.run, deps)
        await trio.sleep(0.1)  # the keeper waits for its next tick, at 2 s
        calc = new_calculation(created_at=clock.now(), deadline=deadline)
        await store.create_calculation(calc, queue=settings.requests_queue)
        await trio.sleep(deadline + 3.0)
        nursery.cancel_scope.cancel()
    assert completed == [calc.deadline_at]
    assert bool(store.channels) is listens
