"""The retention sweep on the memory twin and MockClock."""

from __future__ import annotations

from dataclasses import dataclass

import trio
from trio.testing import MockClock

from osago.broker import Broker, open_memory_broker
from osago.clock import Clock, TrioWallClock
from osago.config import Settings
from osago.loops import retention
from osago.storage import MemoryStore, Store
from tests.factories import new_calculation

DAY = 86400.0


@dataclass(frozen=True)
class Deps:
    settings: Settings
    stop: trio.Event
    clock: Clock
    store: Store
    broker: Broker


async def test_closed_calculations_go_after_the_retention_and_open_ones_stay(
    autojump_clock: MockClock,
) -> None:
    clock = TrioWallClock(epoch=1_790_000_000.0)
    store = MemoryStore()
    settings = Settings(retention=2 * DAY, retention_sweep=3600.0)
    old = new_calculation(created_at=clock.now(), deadline=60.0)
    running = new_calculation(created_at=clock.now() + 3 * DAY, deadline=60.0)
    await store.create_calculation(old, queue="/queue/q")
    await store.complete_due(topic="/topic/t", now=clock.now() + 100, lease=30.0, limit=10)
    stop = trio.Event()
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        deps = Deps(settings, stop, clock, store, broker)
        await nursery.start(retention.run, deps)
        await trio.sleep(DAY)
        assert await store.get_calculation(old.id) is not None  # closed a day ago: kept
        await store.create_calculation(running, queue="/queue/q")
        await trio.sleep(1.5 * DAY)
        assert await store.get_calculation(old.id) is None  # past two days: gone
        assert await store.get_calculation(running.id) is not None  # never closed: kept
        stop.set()
