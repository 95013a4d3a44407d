"""Hedged calls: if the first is slower than ``delay``, start a second; the first answer wins.

Only for idempotent reads (status polls), never for submits. The loser is cancelled. A first
call that fails before ``delay`` fails the hedge (the retry layer decides what next).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import trio

from osago.alarms import shared_alarms
from osago.resilience.events import HedgeStarted, Hook, emit

__all__ = ["hedged"]

T = TypeVar("T")


class _Race(Generic[T]):
    """Two calls racing: the first success wins and cancels the other."""

    __slots__ = ("failures", "first", "has_winner", "hedge", "hedge_done", "winner")

    def __init__(self) -> None:
        self.first = trio.CancelScope()  # around the caller's own call
        self.hedge: trio.CancelScope | None = None  # around the hedge, once it starts
        self.hedge_done: trio.Event | None = None
        self.has_winner = False
        self.winner: T | None = None
        self.failures: list[BaseException] = []

    def win(self, value: T, loser: trio.CancelScope | None) -> None:
        if not self.has_winner:
            self.has_winner, self.winner = True, value
            if loser is not None:
                loser.cancel()

    async def run_hedge(self, call: Callable[[], Awaitable[T]]) -> None:
        """The second call, in a task of its own (see :func:`hedged`)."""
        assert self.hedge is not None
        assert self.hedge_done is not None
        try:
            with self.hedge:
                try:
                    value = await call()
                except trio.Cancelled:
                    raise
                except BaseException as exc:  # (a defect's too: the caller raises it)
                    self.failures.append(exc)
                else:
                    self.win(value, self.first)
        finally:
            self.hedge_done.set()

    async def hedge_over(self, *, shielded: bool) -> None:
        """Return once the hedge (if it started) has ended: the caller never leaves a call
        of its own behind."""
        if self.hedge_done is None:
            return
        with trio.CancelScope(shield=shielded):
            await self.hedge_done.wait()


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
    for the first call alone.

    Why no nursery: most polls answer before the delay, and a nursery per poll (its scope,
    and the schedule point Trio takes on every nursery's exit) cost 23 of a guarded poll's
    45 us. The first call runs in the caller's task, in a cancel scope the hedge can cancel;
    the hedge starts from a shared timer, only when due, as a task of the run (a system
    task, in a copy of the caller's context: the calculation every log line names). The
    caller does not return before that task has ended, as it would not leave a nursery:
    a winning first call cancels it and waits for it to go.
    """
    race: _Race[T] = _Race()
    caller = trio.lowlevel.current_task()

    def due() -> None:
        if race.has_winner or race.failures or not allowed():
            return
        emit(hooks, HedgeStarted(name, trio.current_time(), delay))
        race.hedge, race.hedge_done = trio.CancelScope(), trio.Event()
        trio.lowlevel.spawn_system_task(
            race.run_hedge, call, name=f"hedge {name}", context=caller.context.copy()
        )

    forget = shared_alarms().call_at(trio.current_time() + delay, due)
    try:
        with race.first:
            try:
                value = await call()
            except Exception as exc:
                race.failures.append(exc)
            else:
                race.win(value, race.hedge)
        forget()
        if not race.has_winner:
            await race.hedge_over(shielded=False)  # it may still answer
    finally:
        forget()
        if race.hedge is not None:  # cancelled, or done: it ends at once either way
            race.hedge.cancel()
            await race.hedge_over(shielded=True)
    # Why the failures are let go of here: each one's traceback holds the frame that caught
    # it (this one, or the hedge's), and that frame holds the race that held it: a cycle
    # that only the collector's full collection frees, with every frame and task of the
    # failed call in it (about 60 objects; the realistic profile fails hundreds of polls a
    # minute). Raised from here, the failure's traceback holds this frame too: hence the
    # ``del``s.
    failures, race.failures = race.failures, []
    if race.has_winner:
        del failures
        return race.winner  # type: ignore[return-value]
    failure = failures.pop()
    del failures
    try:
        raise failure
    finally:
        del failure
