"""Coalescing concurrent calls into one: many callers, one transaction.

A worker receives a calculation's ten jobs in the same instant and each would load its
exchange in a transaction of its own (a bridge crossing into asyncio and a commit each).
A :class:`Batcher` queues the calls; its runner takes everything queued, makes ONE call for
the lot, and wakes each caller with its own result. A call alone is run at once (the runner
is waiting for it), so batching adds no delay: batches grow only while a call is running.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

__all__ = ["Batcher"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass(eq=False)
class _Call(Generic[K, R]):
    key: K
    done: trio.Event = field(default_factory=trio.Event)
    result: R | None = None
    error: Exception | None = None


class Batcher(Generic[K, R]):
    """``await batcher(key)`` runs ``many(keys)`` for the keys queued together.

    ``many`` returns each key's result (a key it leaves out gets ``default``); an exception
    it raises is raised to every caller of that batch. Start :meth:`run` in a nursery.
    """

    def __init__(
        self,
        many: Callable[[Sequence[K]], Awaitable[Mapping[K, R]]],
        *,
        default: R,
        max_batch: int = 200,
    ) -> None:
        self._many = many
        self._default = default
        self._max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[_Call[K, R]](math.inf)

    async def __call__(self, key: K) -> R:
        call: _Call[K, R] = _Call(key)
        self._send.send_nowait(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return self._default if call.result is None else call.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve batches until cancelled."""
        task_status.started()
        async for first in self._recv:
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                results = await self._many([c.key for c in batch])
            except Exception as exc:  # each caller gets it, as if it had called alone
                for c in batch:
                    c.error = exc
                    c.done.set()
                continue
            for c in batch:
                c.result = results.get(c.key)
                c.done.set()
