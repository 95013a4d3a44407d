"""Publishing outbox messages: send with receipts, then mark them sent.

At least once: a crash between the send and the mark publishes again after the lease;
consumers (workers, the notifier) drop duplicates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import trio

from osago.broker import Broker, Outgoing
from osago.clock import Clock
from osago.errors import BrokerError, StoreError
from osago.models import OutboxMessage
from osago.storage import Store

__all__ = ["SentMarks", "publish"]

log = logging.getLogger("osago.outbox")


class SentMarks:
    """Marks published rows sent in batches: one transaction for many publishes.

    Why it is safe to defer: a published row is leased for ``outbox_lease`` seconds, so no
    relay takes it while its mark waits here; if the process dies first, the row goes out
    again after its lease and the notifier drops the repeat. Run :meth:`run` in the nursery
    of the role that publishes; on the way out it marks what is left (shielded, bounded).
    """

    def __init__(self, store: Store, clock: Clock, *, cleanup_timeout: float) -> None:
        self._store = store
        self._clock = clock
        self._cleanup_timeout = cleanup_timeout
        self._send, self._recv = trio.open_memory_channel[int](math.inf)

    def add(self, ids: Sequence[int]) -> None:
        """These rows reached the broker."""
        for i in ids:
            self._send.send_nowait(i)

    def _take(self, first: int) -> list[int]:
        batch = [first]
        while True:
            try:
                batch.append(self._recv.receive_nowait())
            except trio.WouldBlock:
                return batch

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Mark batches as they come until cancelled, then what is left."""
        task_status.started()
        try:
            async for first in self._recv:
                await self._mark(self._take(first))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self._cleanup_timeout):
                try:
                    left = self._take(self._recv.receive_nowait())
                except trio.WouldBlock:
                    left = []
                if left:
                    await self._mark(left)

    async def _mark(self, ids: list[int]) -> None:
        try:
            await self._store.mark_sent(ids, now=self._clock.now())
        except StoreError as exc:
            log.warning(
                "outbox: %d sent rows left unmarked (sent again after the lease): %s", len(ids), exc
            )


async def publish(
    broker: Broker,
    store: Store,
    clock: Clock,
    messages: Sequence[OutboxMessage],
    *,
    marks: SentMarks | None = None,
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
