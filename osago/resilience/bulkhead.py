"""A bulkhead: at most ``max_concurrent`` calls to one insurer, waiting at most ``max_wait``.

One slow insurer can then hold only its own slots, never every connection or task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import trio

from osago.errors import BulkheadFull
from osago.resilience.events import BulkheadRejected, Hook, emit

__all__ = ["Bulkhead", "BulkheadPolicy"]


@dataclass(frozen=True)
class BulkheadPolicy:
    """Concurrent calls allowed, and how long a call may wait for a slot."""

    max_concurrent: int = 50
    max_wait: float = 1.0


class Bulkhead:
    """``async with bulkhead:`` takes a slot (FIFO) or raises BulkheadFull."""

    def __init__(
        self, name: str, policy: BulkheadPolicy = BulkheadPolicy(), hooks: Sequence[Hook] = ()
    ) -> None:
        self.name = name
        self.policy = policy
        self._hooks = hooks
        self._slots = trio.Semaphore(policy.max_concurrent)

    @property
    def in_use(self) -> int:
        return self.policy.max_concurrent - self._slots.value

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._slots.acquire_nowait()  # the common case: a free slot, no scope, no wait
            return
        except trio.WouldBlock:
            pass
        with trio.move_on_after(self.policy.max_wait) as scope:
            await self._slots.acquire()
        if scope.cancelled_caught:
            emit(
                self._hooks, BulkheadRejected(self.name, trio.current_time(), self.policy.max_wait)
            )
            raise BulkheadFull(self.name, self.policy.max_concurrent, self.policy.max_wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()
