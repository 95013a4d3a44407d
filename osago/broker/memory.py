"""In-process twin of ActiveMQ: queues with competing consumers, client-individual ack,
NACK with delayed redelivery then ``DLQ.<queue>``, and topics. Same contract tests as STOMP.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from osago.broker._port import Delivery, Outgoing, QueueStats, split_destination
from osago.errors import BrokerUnavailable

__all__ = ["MemoryBroker", "open_memory_broker"]


@dataclass
class _Msg:
    destination: str
    message_id: str
    body: bytes
    headers: dict[str, str]
    redeliveries: int = 0
    returned: bool = False  # came back from a closed consumer: redelivered, not a failed attempt


@dataclass(eq=False)
class _Consumer:
    broker: MemoryBroker
    destination: str
    prefetch: int
    send: trio.MemorySendChannel[Delivery]
    recv: trio.MemoryReceiveChannel[Delivery]
    inflight: dict[str, _Msg] = field(default_factory=dict)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self.recv.__aiter__()

    async def receive(self) -> Delivery:
        return await self.recv.receive()

    async def ack(self, delivery: Delivery) -> None:
        await trio.lowlevel.checkpoint()
        if self.inflight.pop(delivery.ack_id, None) is not None:
            self.broker._dispatch(self.destination)

    async def nack(self, delivery: Delivery) -> None:
        await trio.lowlevel.checkpoint()
        msg = self.inflight.pop(delivery.ack_id, None)
        if msg is not None:
            self.broker._redeliver_later(msg)
            self.broker._dispatch(self.destination)


class MemoryBroker:
    """Broker semantics in one process. Open with :func:`open_memory_broker`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        max_redeliveries: int = 2,
        initial_redelivery_delay: float = 1.1,
        redelivery_delay: float = 1.1,
    ) -> None:
        self._nursery = nursery
        self.max_redeliveries = max_redeliveries
        self.initial_redelivery_delay = initial_redelivery_delay
        self.redelivery_delay = redelivery_delay
        self._ready: dict[str, deque[_Msg]] = {}
        self._consumers: dict[str, list[_Consumer]] = {}
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self.closed = False

    @property
    def connected(self) -> bool:
        return not self.closed

    async def queue_stats(self, queue: str) -> QueueStats | None:
        await trio.lowlevel.checkpoint()
        consumers = self._consumers.get(queue, [])
        inflight = sum(len(c.inflight) for c in consumers)
        return QueueStats(self.depth(queue) + inflight, len(consumers), inflight)

    def depth(self, destination: str) -> int:
        """Messages waiting (not in flight) on a queue."""
        return len(self._ready.get(destination, ()))

    async def send(self, messages: Sequence[Outgoing]) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise BrokerUnavailable("in-process broker is closed")
        for m in messages:
            kind, _ = split_destination(m.destination)
            msg = _Msg(m.destination, f"mem-{next(self._ids)}", m.body, dict(m.headers))
            if kind == "topic":
                for c in self._consumers.get(m.destination, []):
                    c.send.send_nowait(self._delivery(msg, c, redelivered=False))
            else:
                self._ready.setdefault(m.destination, deque()).append(msg)
                self._dispatch(m.destination)

    def _delivery(self, msg: _Msg, consumer: _Consumer, *, redelivered: bool) -> Delivery:
        ack_id = f"{msg.message_id}:{next(self._ids)}"
        if split_destination(msg.destination)[0] == "queue":
            consumer.inflight[ack_id] = msg
        return Delivery(msg.destination, msg.message_id, msg.body, msg.headers, redelivered, ack_id)

    def _dispatch(self, destination: str) -> None:
        ready = self._ready.get(destination)
        consumers = self._consumers.get(destination, [])
        while ready and consumers:
            free = [c for c in consumers if len(c.inflight) < c.prefetch]
            if not free:
                return
            consumer = free[next(self._rr) % len(free)]
            msg = ready.popleft()
            consumer.send.send_nowait(
                self._delivery(msg, consumer, redelivered=msg.redeliveries > 0 or msg.returned)
            )

    def _redeliver_later(self, msg: _Msg) -> None:
        if msg.redeliveries >= self.max_redeliveries:
            _, name = split_destination(msg.destination)
            dead = _Msg(
                f"/queue/DLQ.{name}",
                msg.message_id,
                msg.body,
                {**msg.headers, "original-destination": msg.destination},
            )
            self._ready.setdefault(dead.destination, deque()).append(dead)
            self._dispatch(dead.destination)
            return
        delay = self.initial_redelivery_delay if msg.redeliveries == 0 else self.redelivery_delay
        msg.redeliveries += 1

        async def later() -> None:
            await trio.sleep(delay)
            self._ready.setdefault(msg.destination, deque()).append(msg)
            self._dispatch(msg.destination)

        self._nursery.start_soon(later)

    @asynccontextmanager
    async def subscribe(
        self, destination: str, *, prefetch: int = 1, durable: str | None = None
    ) -> AsyncIterator[_Consumer]:
        # In one process the connection is never lost: a durable topic subscription is a
        # plain one whose acks, like every topic ack here, have nothing to settle.
        del durable
        split_destination(destination)
        send, recv = trio.open_memory_channel[Delivery](float("inf"))
        consumer = _Consumer(self, destination, max(1, prefetch), send, recv)
        self._consumers.setdefault(destination, []).append(consumer)
        self._dispatch(destination)
        try:
            yield consumer
        finally:
            self._consumers[destination].remove(consumer)
            send.close()
            # Like a consumer whose connection closed: unacked messages go back, redelivered.
            back = list(consumer.inflight.values())
            consumer.inflight.clear()
            for msg in reversed(back):
                msg.returned = True
                self._ready.setdefault(destination, deque()).appendleft(msg)
            self._dispatch(destination)


@asynccontextmanager
async def open_memory_broker(**options: Any) -> AsyncIterator[MemoryBroker]:
    """An in-process broker; its redelivery timers live in its own nursery."""
    async with trio.open_nursery() as nursery:
        broker = MemoryBroker(nursery, **options)
        try:
            yield broker
        finally:
            broker.closed = True
            nursery.cancel_scope.cancel()
