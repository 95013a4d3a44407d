"""Broker port, the ActiveMQ STOMP client and the in-process twin."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from osago.broker._port import (
    Broker,
    Delivery,
    Outgoing,
    QueueStats,
    Subscription,
    split_destination,
)
from osago.broker.memory import MemoryBroker, open_memory_broker
from osago.broker.stomp import StompBroker, open_stomp_broker
from osago.errors import ConfigError

__all__ = [
    "Broker",
    "Delivery",
    "MemoryBroker",
    "Outgoing",
    "QueueStats",
    "StompBroker",
    "Subscription",
    "open_broker",
    "open_memory_broker",
    "open_stomp_broker",
    "split_destination",
]


@asynccontextmanager
async def open_broker(
    url: str, *, cleanup_timeout: float = 3.0, client_id: str | None = None
) -> AsyncIterator[Broker]:
    """``memory://`` (in-process), or ActiveMQ: ``stomp://host:port``, several of them
    comma-separated, or ``failover:(...)`` around them; ``client_id`` keeps durable
    subscriptions across reconnects."""
    if url.startswith("memory:"):
        async with open_memory_broker() as memory:
            yield memory
    elif url.startswith(("stomp:", "failover:")):
        async with open_stomp_broker(
            url, cleanup_timeout=cleanup_timeout, client_id=client_id
        ) as stomp:
            yield stomp
    else:
        raise ConfigError(
            f"OSAGO_BROKER_URL={url!r}: use memory://, stomp://host:port (comma-separated for"
            " several), or failover:(stomp://h1:61613,stomp://h2:61613)"
        )
