"""Publishing outbox messages: send with receipts, then mark them sent.

At least once: a crash between the send and the mark publishes again after the lease;
consumers (workers, the notifier) drop duplicates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import trio

from osago.broker import Broker, Outgoing
from osago.clock import Clock
from osago.errors import BrokerError, StoreError
from osago.models import OutboxMessage
from osago.storage import Store

__all__ = ["Deferred", "job_publisher", "publish", "sent_marks"]

log = logging.getLogger("osago.outbox")

T = TypeVar("T")


class Deferred(Generic[T]):
    """Writes that may wait a little, made in batches: one transaction for many items.

    ``add`` never waits. The runner writes what came within ``linger`` seconds of the first
    item (at most ``max_batch``); a failed write is logged (the caller says why that is
    safe). On the way out it writes what is left, shielded and bounded.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        linger: float,
        cleanup_timeout: float,
        max_batch: int = 1000,
    ) -> None:
        self._name = name
        self._write = write
        self._linger = linger
        self._cleanup_timeout = cleanup_timeout
        self._max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[T](math.inf)

    def add(self, items: Sequence[T]) -> None:
        """Write these soon."""
        for item in items:
            self._send.send_nowait(item)

    def _take(self, batch: list[T]) -> list[T]:
        while len(batch) < self._max_batch:
            try:
                batch.append(self._recv.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches as they come until cancelled, then what is left."""
        task_status.started()
        try:
            async for first in self._recv:
                await trio.sleep(self._linger)
                await self._flush(self._take([first]))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self._cleanup_timeout):
                while left := self._take([]):
                    await self._flush(left)

    async def _flush(self, items: list[T]) -> None:
        try:
            await self._write(items)
        except StoreError as exc:
            log.warning("%s: %d deferred writes lost: %s", self._name, len(items), exc)


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


def job_publisher(
    broker: Broker, store: Store, clock: Clock, marks: Deferred[int], *, cleanup_timeout: float
) -> Deferred[OutboxMessage]:
    """Publishes what the api hands it (the jobs it just committed, leased to it), in order,
    what queued meanwhile in one send: a POST costs no relay wake-up and no claim, and the
    202 does not wait for the broker. Rows it cannot publish stay leased; a relay takes
    them when the lease ends."""

    async def write(batch: list[OutboxMessage]) -> None:
        await publish(broker, store, clock, batch, marks=marks)

    return Deferred("jobs", write, linger=0.0, cleanup_timeout=cleanup_timeout)


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
        await broker.send([Outgoing(m.destination, m.body, m.headers) for m in messages])
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
