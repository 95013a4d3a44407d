"""The Broker port: persistent sends, queues with ack/nack, topics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from osago.errors import BrokerProtocolError

__all__ = [
    "Broker",
    "Delivery",
    "Outgoing",
    "QueueStats",
    "Subscription",
    "read_statistics",
    "split_destination",
]


def split_destination(destination: str) -> tuple[str, str]:
    """``/queue/x`` -> ("queue", "x"); ``/topic/y`` -> ("topic", "y")."""
    parts = destination.split("/", 2)
    kind, name = (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "" else ("", "")
    if kind not in ("queue", "topic") or not name:
        raise BrokerProtocolError("bad destination", destination)
    return kind, name


@dataclass(frozen=True)
class Outgoing:
    """A message to send; always persistent."""

    destination: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received message. ``ack_id`` changes on every redelivery; ``message_id`` does not."""

    destination: str
    message_id: str
    body: bytes
    headers: Mapping[str, str]
    redelivered: bool
    ack_id: str
    generation: int = 0


@dataclass(frozen=True)
class QueueStats:
    """What the broker says of one queue."""

    messages: int  # waiting or in flight (not yet acked)
    consumers: int
    in_flight: int = 0  # dispatched to a consumer, not yet acked

    @property
    def waiting(self) -> int:
        """Messages no consumer holds yet."""
        return max(0, self.messages - self.in_flight)


def read_statistics(body: bytes) -> QueueStats | None:
    """ActiveMQ's statistics reply (a MapMessage as jms-map-json); None if unreadable."""
    try:
        entries = json.loads(body)["map"]["entry"]
        # Numbers come as {"string": name, "long": n}; text as {"string": [name, text]}.
        values = {
            e["string"]: v
            for e in entries
            if isinstance(e.get("string"), str)
            for k, v in e.items()
            if k != "string"
        }
        return QueueStats(
            int(values["size"]), int(values["consumerCount"]), int(values["inflightCount"])
        )
    except (ValueError, KeyError, TypeError):
        return None


class Subscription(Protocol):
    """Messages of one destination. On a queue each must be acked or nacked."""

    def __aiter__(self) -> AsyncIterator[Delivery]:
        """Every delivery, as it arrives, until the subscription ends."""
        ...

    async def receive(self) -> Delivery:
        """The next delivery (waits for it)."""
        ...

    async def ack(self, delivery: Delivery) -> None:
        """Done with it: the broker forgets it."""
        ...

    async def nack(self, delivery: Delivery) -> None:
        """Failed: redeliver later, or dead-letter after the configured attempts."""
        ...


class Broker(Protocol):
    """A message broker (ActiveMQ over STOMP, or the in-process twin)."""

    @property
    def connected(self) -> bool:
        """True while a connection to the broker is up (readiness)."""
        ...

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Return once the broker holds every message durably (receipts); else raise."""
        ...

    async def queue_stats(self, queue: str) -> QueueStats | None:
        """Messages and consumers of ``queue``, per the broker (may wait: bound it)."""
        ...

    def subscribe(
        self, destination: str, *, prefetch: int = 1, durable: str | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Consume ``destination``; at most ``prefetch`` unacked queue messages at a time.

        ``durable`` names a topic subscription that outlives a lost connection: what is
        published while this client reconnects waits for it, and must be acked like a queue
        message. Leaving the context ends it for good."""
        ...
