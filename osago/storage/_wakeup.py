"""A coalescing wake-up flag shared by the store twins."""

from __future__ import annotations

import trio

__all__ = ["Flag"]


class Flag:
    """Set by notifications, consumed by ``wait``: a burst of notifications wakes once."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()
