"""A TCP proxy that can freeze: the peer behind it hangs (holds every byte) instead of
refusing, as a stuck database or a paused broker does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import trio

__all__ = ["Freezer", "open_freezer"]


class Freezer:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`freeze` holds traffic both ways."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._flowing = trio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        if self._flowing.is_set():
            self._flowing = trio.Event()

    def thaw(self) -> None:
        self._flowing.set()

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        async for chunk in src:
            while not self._flowing.is_set():
                await self._flowing.wait()
            await dst.send_all(chunk)

    async def _serve(self, client: trio.SocketStream) -> None:
        try:
            server = await trio.open_tcp_stream(*self.upstream)
        except OSError:
            await client.aclose()
            return
        async with client, server, trio.open_nursery() as n:
            n.start_soon(self._pump_then_cancel, client, server, n.cancel_scope)
            n.start_soon(self._pump_then_cancel, server, client, n.cancel_scope)

    async def _pump_then_cancel(
        self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._pump(src, dst)
        scope.cancel()


@asynccontextmanager
async def open_freezer(upstream: tuple[str, int]) -> AsyncIterator[Freezer]:
    """A running :class:`Freezer`; its connections end with the context."""
    freezer = Freezer(upstream)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, freezer._serve, 0, host="127.0.0.1")
        )
        freezer.port = listeners[0].socket.getsockname()[1]
        yield freezer
        nursery.cancel_scope.cancel()
