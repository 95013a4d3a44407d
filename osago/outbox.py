"""Publishing outbox messages: send with receipts, then mark them sent.

At least once: a crash between the send and the mark publishes again after the lease;
consumers (workers, the notifier) drop duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from osago.broker import Broker, Outgoing
from osago.clock import Clock
from osago.errors import BrokerError, StoreError
from osago.models import OutboxMessage
from osago.storage import Store

__all__ = ["publish"]

log = logging.getLogger("osago.outbox")


async def publish(
    broker: Broker, store: Store, clock: Clock, messages: Sequence[OutboxMessage]
) -> bool:
    """Publish ``messages`` in order; False if they stay in the outbox for the relay."""
    if not messages:
        return True
    try:
        await broker.send([Outgoing(m.destination, m.body, m.headers) for m in messages])
        await store.mark_sent([m.id for m in messages], now=clock.now())
    except (BrokerError, StoreError) as exc:
        log.warning(
            "outbox: %d messages left for the relay after their lease: %s", len(messages), exc
        )
        return False
    return True
