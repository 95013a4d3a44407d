"""Publishing outbox messages: send with receipts, then mark them sent.

At least once: a crash between the send and the mark publishes again after the lease;
consumers (workers, the notifier) drop duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from osago.batching import Deferred
from osago.broker import Broker, Outgoing, split_destination
from osago.clock import Clock
from osago.errors import BrokerError, StoreError
from osago.events import PACKED_HEADERS, pack
from osago.models import OutboxMessage
from osago.storage import Store

__all__ = ["PACK_MAX", "outgoing", "publish", "publisher", "sent_marks"]

log = logging.getLogger("osago.outbox")

# The most rows one message carries (a calculation has about a dozen events, a job an insurer).
PACK_MAX = 64

GROUP = "JMSXGroupID"  # ActiveMQ's message group: a calculation's jobs (Job.headers)


def outgoing(messages: Sequence[OutboxMessage]) -> list[Outgoing]:
    """The broker messages for these rows, in order. Consecutive rows share a message, one
    per line (:func:`osago.events.pack`, at most ``PACK_MAX``): events for one topic, and
    jobs of one calculation (one ``JMSXGroupID``, :meth:`osago.models.Job.headers`).

    Why pack events: ActiveMQ's work is per message (journal, dispatch to the notifier's
    durable subscription, its ack), and so is the notifier's (a frame in, an ACK out); a
    worker hands about three events to each send at load, so a message each tripled it.

    Why pack a calculation's jobs: they went to one worker anyway (one message group), and
    ten persistent messages and ten ACKs a calculation were most of ActiveMQ's work and a
    good part of a worker's. The worker runs each job of a message as its own exchange and
    acks the message once all are done; a job that failed NACKs it once the others end, and
    its redelivery (or its replay from the DLQ) runs again only the jobs not settled meanwhile
    (osago/roles/_held.py). Jobs of different calculations never share a message: a
    message is one calculation's, as a group is."""
    out: list[Outgoing] = []
    i, n = 0, len(messages)
    while i < n:
        first = messages[i]
        key = _pack_key(first)
        j = i + 1
        if key is not None:
            while j < n and j - i < PACK_MAX and _pack_key(messages[j]) == key:
                j += 1
        if j - i == 1:
            out.append(Outgoing(first.destination, first.body, first.headers))
        else:
            body = pack([m.body for m in messages[i:j]])
            group = key[1] if key is not None else None
            headers = PACKED_HEADERS if group is None else {**PACKED_HEADERS, GROUP: group}
            out.append(Outgoing(first.destination, body, headers))
        i = j
    return out


def _pack_key(m: OutboxMessage) -> tuple[str, str | None] | None:
    """Rows with the same key may share a message; None: this row goes alone."""
    if split_destination(m.destination)[0] == "topic":
        return (m.destination, None)
    group = m.headers.get(GROUP)
    return None if group is None else (m.destination, group)


def sent_marks(
    store: Store, clock: Clock, *, linger: float, cleanup_timeout: float
) -> Deferred[int]:
    """Published rows, marked sent in batches.

    Why it is safe to defer (and to lose): a published row stays leased for
    ``outbox_lease`` seconds, so no relay takes it while its mark waits; if the mark never
    lands (a crash, the database away), the row goes out again after its lease and the
    notifier drops the repeat.
    """

    async def write(ids: list[int]) -> None:
        await store.mark_sent(ids, now=clock.now())

    return Deferred("outbox marks", write, linger=linger, cleanup_timeout=cleanup_timeout)


def publisher(
    name: str,
    broker: Broker,
    store: Store,
    clock: Clock,
    marks: Deferred[int],
    *,
    cleanup_timeout: float,
) -> Deferred[OutboxMessage]:
    """Publishes the rows a role hands it (committed just now and leased to it: the api's
    jobs, a worker's events), in order, what queued meanwhile in one send: the caller waits
    for no broker and no relay wake-up. Rows it cannot publish stay leased; a relay takes
    them when the lease ends.

    Why one send for what queued: a batch goes to ActiveMQ as one transaction, journalled at
    its COMMIT in one write (``StompConnection.send_messages``); sent one by one, each was a
    write of its own that its receipt waited for."""

    async def write(batch: list[OutboxMessage]) -> None:
        await publish(broker, store, clock, batch, marks=marks)

    return Deferred(name, write, linger=0.0, cleanup_timeout=cleanup_timeout)


async def publish(
    broker: Broker,
    store: Store,
    clock: Clock,
    messages: Sequence[OutboxMessage],
    *,
    marks: Deferred[int] | None = None,
) -> bool:
    """Publish ``messages`` in order; False if they stay in the outbox for the relay.

    With ``marks`` the rows are marked sent in a later batch, else here and now.
    """
    if not messages:
        return True
    try:
        await broker.send(outgoing(messages))
        if marks is not None:
            marks.add([m.id for m in messages])
        else:
            await store.mark_sent([m.id for m in messages], now=clock.now())
    except (BrokerError, StoreError) as exc:
        log.warning(
            "outbox: %d messages left for the relay after their lease: %s", len(messages), exc
        )
        return False
    return True
