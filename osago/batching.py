"""Coalescing many calls into one: many callers, one transaction.

A worker receives a calculation's ten jobs in the same instant and each would load its
exchange in a transaction of its own (a bridge crossing into asyncio and a commit each).
A :class:`Batcher` queues the calls; its runner takes everything queued, makes ONE call for
the lot, and wakes each caller with its own result. A call alone is run at once (the runner
is waiting for it), so batching adds no delay: batches grow only while a call is running;
or, with a ``linger``, the runner waits that long after a call before taking the batch, for
calls whose callers can wait (a worker's safety checks of callbacks, minutes apart).
With a ``busy_linger`` the runner waits that long only while calls come faster than one per
``busy_linger`` (a moving average of the gaps between them, calls within a millisecond
counted as one): when company is likely. Idle, a call runs at once.
A :class:`Deferred` is for writes nobody waits for: it gathers them for a short linger and
writes them together.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from osago.errors import StoreError

__all__ = ["Batcher", "Deferred"]

log = logging.getLogger("osago.batching")

R = TypeVar("R")
Q = TypeVar("Q")

_GAP_WEIGHT = 0.2  # of the newest gap in the moving average
# Calls closer together than this are one arrival (a message's jobs, answers read in one
# turn): they share a batch anyway, and counted apart their gaps of ~0 would make an idle
# runner look busy.
_BURST = 0.001


def _queued(recv: trio.MemoryReceiveChannel[Q], batch: list[Q], limit: int) -> list[Q]:
    """``batch`` and whatever is queued behind it, up to ``limit`` items, without waiting."""
    while len(batch) < limit:
        try:
            batch.append(recv.receive_nowait())
        except trio.WouldBlock:
            break
    return batch


def _itself(item: Any) -> Hashable:
    return item  # type: ignore[no-any-return]


@dataclass(eq=False)
class _Call(Generic[Q, R]):
    item: Q
    at: float  # trio time of the call: its linger counts from here
    done: trio.Event = field(default_factory=trio.Event)
    result: R | None = None
    error: Exception | None = None


class Batcher(Generic[Q, R]):
    """``await batcher(item)`` runs ``many(items)`` for the items queued together.

    ``many`` returns each item's result by ``key(item)`` (the item itself by default; an
    item it leaves out gets ``default``); an exception it raises is raised to every caller
    of that batch. ``linger`` seconds after the first call of a batch came the runner takes
    what has queued (0: at once, or as soon as the batch before it ends); or
    ``busy_linger`` seconds, but only while the average gap between calls is shorter than
    that. Start :meth:`run` in a nursery.

    Why wait only when busy: a batch's cost is mostly per batch (a crossing into asyncio, a
    statement's set-up in PostgreSQL, the ActiveMQ message its events become, the notifier's
    frame in and ACK out), so a wait that brings company pays for itself in CPU, and under
    load the CPU saved is queueing saved. Waiting when no company is likely only adds the wait.
    """

    def __init__(
        self,
        many: Callable[[Sequence[Q]], Awaitable[Mapping[Any, R]]],
        *,
        default: R,
        key: Callable[[Q], Hashable] = _itself,
        max_batch: int = 200,
        linger: float = 0.0,
        busy_linger: float = 0.0,
    ) -> None:
        self._many = many
        self._linger = linger
        self._busy_linger = busy_linger
        self._last_call = -math.inf
        self._gap = math.inf  # moving average of the gaps between calls (busy_linger only)
        self._default = default
        self._key = key
        self._max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[_Call[Q, R]](math.inf)

    async def __call__(self, item: Q) -> R:
        now = trio.current_time()
        call: _Call[Q, R] = _Call(item, now)
        if self._busy_linger > 0 and (gap := now - self._last_call) >= _BURST:
            self._last_call = now
            # One gap of five lingers turns waiting off at once; after gaps of ten lingers it
            # takes about ten short ones to turn it on.
            self._gap = (
                gap if math.isinf(self._gap) else self._gap + _GAP_WEIGHT * (gap - self._gap)
            )
        self._send.send_nowait(call)
        await call.done.wait()
        error, call.error = call.error, None
        if error is not None:
            # Raised from here, its traceback holds this frame: were this frame to hold it
            # too (as ``call.error``, or ``error``), the two would wait for a full collection.
            try:
                raise error
            finally:
                del error
        return self._default if call.result is None else call.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve batches until cancelled."""
        task_status.started()
        async for first in self._recv:
            # From the first call's arrival, not from now: one that queued while the last
            # batch ran has waited part of its linger already, and its caller (an answer's
            # user) is waiting too. So no call waits longer than its linger for company.
            if self._linger > 0:
                await trio.sleep_until(first.at + self._linger)
            elif self._gap < self._busy_linger:
                await trio.sleep_until(first.at + self._busy_linger)
            batch = _queued(self._recv, [first], self._max_batch)
            try:
                results = await self._many([c.item for c in batch])
            except Exception as exc:  # each caller gets it, as if it had called alone
                for c in batch:
                    c.error = exc
                    c.done.set()
                continue
            for c in batch:
                c.result = results.get(self._key(c.item))
                c.done.set()


@dataclass(eq=False, slots=True)
class _Added:
    at: float  # trio time of the add
    left: int  # its items not yet written


class Deferred(Generic[R]):
    """Writes that may wait a little, made in batches: one transaction for many items.

    ``add`` never waits. The runner writes what came within ``linger`` seconds of the first
    item (at most ``max_batch``); a failed write is logged (the caller says why that is
    safe). On the way out it writes what is left, shielded and bounded. :meth:`oldest_wait`
    says how far behind the writes are.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[R]], Awaitable[None]],
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
        self._send, self._recv = trio.open_memory_channel[R](math.inf)
        # Items are written in the order they were added: the oldest unwritten one is always
        # in the first add still here.
        self._adds: deque[_Added] = deque()

    def add(self, items: Sequence[R]) -> None:
        """Write these soon."""
        for item in items:
            self._send.send_nowait(item)
        if items:
            self._adds.append(_Added(trio.current_time(), len(items)))

    def oldest_wait(self) -> float:
        """Seconds the oldest item not yet written (or being written) has waited; 0 if none."""
        return trio.current_time() - self._adds[0].at if self._adds else 0.0

    def _done(self, n: int) -> None:
        """``n`` more items are written (or given up): the oldest ``n``."""
        while n and self._adds:
            first = self._adds[0]
            taken = min(n, first.left)
            first.left -= taken
            n -= taken
            if not first.left:
                self._adds.popleft()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches as they come until cancelled, then what is left."""
        task_status.started()
        try:
            async for first in self._recv:
                await trio.sleep(self._linger)
                await self._flush(_queued(self._recv, [first], self._max_batch))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self._cleanup_timeout):
                while left := _queued(self._recv, [], self._max_batch):
                    await self._flush(left)

    async def _flush(self, items: list[R]) -> None:
        try:
            await self._write(items)
        except StoreError as exc:
            log.warning("%s: %d deferred writes lost: %s", self._name, len(items), exc)
        finally:
            self._done(len(items))
