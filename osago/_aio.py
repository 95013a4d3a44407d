"""Small Trio helpers shared by the roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["wait_any"]


async def wait_any(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as any of ``waits`` returns; the others are cancelled."""
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(one, wait)
