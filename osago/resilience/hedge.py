"""Hedged calls: if the first is slower than ``delay``, start a second; the first answer wins.

Only for idempotent reads (status polls), never for submits. The loser is cancelled. A first
call that fails before ``delay`` fails the hedge (the retry layer decides what next).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import trio

from osago.resilience.events import HedgeStarted, Hook, emit

__all__ = ["hedged"]

T = TypeVar("T")


async def hedged(
    name: str,
    call: Callable[[], Awaitable[T]],
    *,
    delay: float,
    hooks: Sequence[Hook] = (),
    allowed: Callable[[], bool] = lambda: True,
) -> T:
    """Return the first successful result of up to two concurrent ``call()``s.

    ``allowed()`` is asked when the hedge is due (a retry budget's ``try_spend``: a hedge
    is extra load on a slow insurer, as a retry is on a failing one); False: keep waiting
    for the first call alone."""
    winner: list[T] = []
    failures: list[Exception] = []
    finished = trio.Event()
    racing = False  # the hedge started: two calls are out
    async with trio.open_nursery() as nursery:

        async def one() -> None:
            try:
                value = await call()
            except Exception as exc:
                failures.append(exc)
            else:
                winner.append(value)
                # Why only when racing: a cancel raises Cancelled through whatever it
                # reaches, here the waiting caller, which cost a third of a hedged call on
                # the common path, no hedge (105 -> 68 us a call, a call itself 6 us).
                if racing:
                    nursery.cancel_scope.cancel()  # the loser
            finally:
                finished.set()

        nursery.start_soon(one)
        with trio.move_on_after(delay):
            await finished.wait()
        if not finished.is_set() and allowed():
            racing = True
            emit(hooks, HedgeStarted(name, trio.current_time(), delay))
            nursery.start_soon(one)
    if winner:
        return winner[0]
    raise failures[-1]
