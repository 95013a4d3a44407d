"""A LISTEN connection that outlives database restarts."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import trio

from osago.errors import StoreError
from osago.storage._bridge import DRIVER_ERRORS, run_abandonable
from osago.storage._wakeup import Flag

__all__ = ["keep_listening"]

log = logging.getLogger("osago.store")

_LOST = (*DRIVER_ERRORS, trio.TooSlowError)


async def keep_listening(
    loop: Any,
    url: str,
    channel: str,
    flag: Flag,
    *,
    operation_timeout: float,
    cleanup_timeout: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """LISTEN ``channel`` and fire ``flag`` on each NOTIFY, until cancelled.

    Started once the first LISTEN is in place (else StoreError). A lost connection is
    re-established with backoff; the flag fires on the loss and again once listening, since
    whatever was committed in between was never notified.
    """

    def on_notify(*_: object) -> None:
        flag.fire()

    backoff, started = 0.1, False
    while True:
        lost = trio.Event()
        try:
            with trio.fail_after(operation_timeout):
                conn = await run_abandonable(loop, asyncpg.connect(url))
                # Why: asyncpg tells a closed connection only to this listener; without it
                # wake-ups silently fell back to the safety tick after a database restart.
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await run_abandonable(loop, conn.add_listener(channel, on_notify))
        except _LOST as exc:
            if not started:
                raise StoreError("listen", f"{type(exc).__name__}: {exc}") from exc
            log.warning("LISTEN %s: %s; again in %.1fs", channel, exc, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        if started:
            log.info("LISTEN %s re-established", channel)
            flag.fire()
        else:
            task_status.started()
            started = True
        backoff = 0.1
        try:
            await lost.wait()
            log.warning("LISTEN %s: connection lost; re-establishing", channel)
            flag.fire()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(cleanup_timeout):
                await loop.run_aio_coroutine(conn.close())
