"""The outbox backlog and the broker's queue figures, refreshed on a drift-free interval by
the processes that publish jobs (api, worker): what tells an operator the queue drains."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress

import trio

from osago.admission import Backlog
from osago.broker import Broker, QueueStats
from osago.clock import Clock
from osago.errors import BrokerError, StoreError
from osago.metrics._families import Metrics
from osago.storage import Store

__all__ = ["refresh_backlog"]

log = logging.getLogger("osago.metrics")

STATS_TIMEOUT = 2.0  # ActiveMQ does not answer for a queue it has not created yet


def queue_label(destination: str) -> str:
    """``/queue/osago.calculations`` -> ``osago.calculations``."""
    return destination.removeprefix("/queue/")


async def refresh_backlog(
    metrics: Metrics,
    store: Store,
    broker: Broker,
    queues: Sequence[str],
    clock: Clock,
    stop: trio.Event,
    *,
    backlog: Backlog | None = None,
    every: float = 5.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Set the outbox and queue gauges every ``every`` seconds until ``stop``; and
    ``backlog`` from the first queue (the requests queue), for the api's admission."""
    task_status.started()
    next_at = trio.current_time()
    while not stop.is_set():
        try:
            pending, oldest = await store.outbox_backlog()
            metrics.outbox_pending.set(pending)
            metrics.outbox_oldest_age.set(0.0 if oldest is None else clock.now() - oldest)
        except StoreError as exc:
            log.debug("outbox backlog not read: %s", exc)
        read: dict[str, QueueStats | None] = {}
        for queue in queues:
            read[queue] = None
            with trio.move_on_after(STATS_TIMEOUT), suppress(BrokerError):
                read[queue] = await broker.queue_stats(queue)
        if backlog is not None:
            backlog.note(read[queues[0]])
        # Set together, after every read: a scrape sees one refresh of all the queues (the
        # queue and its DLQ), never the queue's new figures beside its DLQ's missing ones.
        for queue, stats in read.items():
            label = queue_label(queue)
            metrics.queue_messages.labels(label).set(stats.messages if stats else 0)
            metrics.queue_consumers.labels(label).set(stats.consumers if stats else 0)
        next_at = max(next_at + every, trio.current_time())
        with trio.move_on_at(next_at):
            await stop.wait()
