"""Published outbox rows are marked sent in batches (deferred writes), none forgotten at
shutdown; a worker's events go out in shared sends."""

from __future__ import annotations

from collections.abc import Sequence

import trio
from trio.testing import MockClock

from osago.broker import Outgoing
from osago.clock import TrioWallClock
from osago.events import unpack
from osago.outbox import sent_marks
from osago.storage import MemoryStore
from tests.factories import new_calculation
from tests.unit.test_flow import SETTINGS, harness, kinds


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


async def test_events_settled_together_in_a_worker_go_out_in_shared_sends(
    autojump_clock: MockClock,
) -> None:
    """A worker hands its settled exchanges' events to one publisher: what settles while a
    send is out goes in the next one (one ActiveMQ transaction), not a send per exchange."""
    async with harness({"aurora": 1.0, "borealis": 1.0}) as h:
        sends: list[int] = []  # events in each send to the topic
        messages_sent: list[int] = []  # its messages
        send = h.broker.send

        async def counted(messages: Sequence[Outgoing]) -> None:
            topic = [m for m in messages if m.destination == SETTINGS.results_topic]
            if topic:
                sends.append(sum(len(unpack(m.body)) for m in topic))
                messages_sent.append(len(topic))
            await send(messages)

        h.broker.send = counted  # type: ignore[method-assign]
        calcs = [await h.submit() for _ in range(5)]
        await trio.sleep(10)
    # Each calculation: two offers and completed, every one delivered once.
    assert sorted(k for _, k, _ in kinds(h)) == ["completed"] * 5 + ["offer"] * 10
    assert {e["calculation_id"] for _, e in h.events} == {str(c.id) for c in calcs}
    assert sum(sends) == 15
    # A send per exchange was a send per calculation here (its completion carried its
    # offers); now the calculations settled together share one.
    assert len(sends) < len(calcs)
    # And the events of one send share its messages (osago.outbox.outgoing).
    assert messages_sent == [1] * len(sends)
