"""Hedged polls on MockClock: the first answer wins and the loser is cancelled, failures fail
the hedge only when no call is left, a fast or budget-less poll is not hedged, and a poll
answered first starts no task; the hedge runs in its caller's context."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.lowlevel
from trio.testing import MockClock

from osago.resilience import hedged
from osago.resilience.hedge import _Race
from tests.cycles import cyclic_garbage


def _polls_taking(*durations: float) -> tuple[Callable[[], Awaitable[float]], list[float]]:
    """A poll whose calls take ``durations`` in turn, and when any of them was cancelled."""
    left = iter(durations)
    cancelled: list[float] = []

    async def poll() -> float:
        d = next(left)
        try:
            await trio.sleep(d)
        except trio.Cancelled:
            cancelled.append(trio.current_time())
            raise
        return d

    return poll, cancelled


@pytest.mark.parametrize(
    ("durations", "winner", "at"),
    [
        ((5.0, 1.0), 1.0, 1.5),  # the hedge (started at 0.5) wins: the first is cancelled
        ((0.8, 5.0), 0.8, 0.8),  # the first wins the race: the hedge is cancelled
    ],
)
async def test_a_hedged_race_returns_the_first_answer_and_cancels_the_loser(
    autojump_clock: MockClock, durations: tuple[float, float], winner: float, at: float
) -> None:
    poll, cancelled = _polls_taking(*durations)
    assert await hedged("x", poll, delay=0.5) == winner
    assert trio.current_time() == pytest.approx(at)
    assert cancelled == [pytest.approx(at)]


Plan = tuple[float, str]  # a call's duration, and "ok" or the message it fails with

FAILURES = pytest.mark.parametrize(
    ("first", "second", "outcome", "at"),
    [
        # A first call that fails before the hedge is due fails the hedge: no second call.
        ((0.2, "boom"), None, "boom", 0.2),
        # One that fails while the hedge runs leaves it to the hedge...
        ((0.8, "boom"), (1.0, "ok"), "ok", 1.5),
        # ... and when both fail, the last failure is the hedge's.
        ((0.8, "boom"), (1.0, "bang"), "bang", 1.5),
    ],
)


def _planned(first: Plan, second: Plan | None) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A poll whose first and second calls go as planned, and how many calls it had."""
    plans = iter([first, second])
    calls = [0]

    async def poll() -> str:
        calls[0] += 1
        plan = next(plans)
        assert plan is not None
        await trio.sleep(plan[0])
        if plan[1] != "ok":
            raise ValueError(plan[1])
        return plan[1]

    return poll, calls


@FAILURES
async def test_failures_fail_the_hedge_only_when_no_call_is_left(
    autojump_clock: MockClock,
    first: Plan,
    second: Plan | None,
    outcome: str,
    at: float,
) -> None:
    poll, counted = _planned(first, second)
    if outcome == "ok":
        assert await hedged("x", poll, delay=0.5) == "ok"
    else:
        with pytest.raises(ValueError, match=outcome):
            await hedged("x", poll, delay=0.5)
    assert (counted[0], trio.current_time()) == (1 if second is None else 2, pytest.approx(at))


@FAILURES
async def test_a_failed_call_leaves_no_cycle_for_the_collector(
    autojump_clock: MockClock, first: Plan, second: Plan | None, outcome: str, at: float
) -> None:
    # A failure's traceback holds the frames that caught it; were they to hold the failure
    # too, each failed poll would wait in memory, with its tasks and frames, for the next
    # full collection (osago/collector.py): minutes.
    poll, _ = _planned(first, second)
    with cyclic_garbage() as found, contextlib.suppress(ValueError):
        assert await hedged("x", poll, delay=0.5) == outcome
    left = [type(o).__name__ for o in found if isinstance(o, ValueError | _Race)]
    assert left == []


@pytest.mark.parametrize(
    ("duration", "budget_left"),
    [
        (0.2, True),  # the first answers before the hedge is due
        # A hedge is extra load like a retry: an insurer slow on every poll is not asked
        # twice for each once the budget is spent.
        (2.0, False),
    ],
)
async def test_no_hedge_for_a_fast_first_call_or_a_spent_budget(
    autojump_clock: MockClock, duration: float, budget_left: bool
) -> None:
    calls = 0

    async def poll() -> int:
        nonlocal calls
        calls += 1
        await trio.sleep(duration)
        return 7

    assert await hedged("x", poll, delay=0.5, allowed=lambda: budget_left) == 7
    assert (calls, trio.current_time()) == (1, pytest.approx(duration))


class _Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names.append(task.name)


async def test_a_poll_answered_before_the_hedge_is_due_starts_no_task(
    autojump_clock: MockClock,
) -> None:
    """Most polls answer before the delay: they run in the caller's task, and a hedge task
    is started only when its time comes (a task per poll cost more than the poll)."""

    async def poll(after: float) -> float:
        await trio.sleep(after)
        return after

    await hedged("warm", lambda: poll(0.0), delay=0.5)  # the shared timer starts once a run
    spawns = _Spawns()
    trio.lowlevel.add_instrument(spawns)
    try:
        assert await hedged("x", lambda: poll(0.2), delay=0.5) == 0.2
        assert spawns.names == []
        assert await hedged("x", lambda: poll(0.8), delay=0.5) == 0.8
        assert len(spawns.names) == 1  # the hedge, at 0.5, cancelled when the first answered
    finally:
        trio.lowlevel.remove_instrument(spawns)


_CALCULATION: contextvars.ContextVar[str] = contextvars.ContextVar("calculation", default="")


async def test_the_hedge_runs_in_its_callers_context(autojump_clock: MockClock) -> None:
    """The hedge is started from a shared timer's task; it must still see the caller's
    context (the calculation every log line names)."""
    seen: list[str] = []
    delays = iter([5.0, 1.0])

    async def poll() -> str:
        seen.append(_CALCULATION.get())
        await trio.sleep(next(delays))
        return "ok"

    _CALCULATION.set("calc-1")
    assert await hedged("x", poll, delay=0.5) == "ok"
    assert seen == ["calc-1", "calc-1"]


async def test_a_caller_cancelled_mid_race_leaves_no_call_behind(autojump_clock: MockClock) -> None:
    """The hedge runs in a task of its own, not in a nursery of the caller's: still, a caller
    cancelled while both calls are out returns only once both are cancelled."""
    poll, cancelled = _polls_taking(5.0, 5.0)
    with trio.move_on_after(2.0) as scope:
        await hedged("x", poll, delay=0.5)
    assert scope.cancelled_caught
    assert cancelled == [pytest.approx(2.0), pytest.approx(2.0)]


class _Defect(BaseException):
    """Not an Exception: what a defect deep in a call might raise."""


async def test_whatever_the_hedge_raises_reaches_the_caller(autojump_clock: MockClock) -> None:
    """The hedge runs as a task of the run, where an uncaught error would end the run: what
    its call raises goes to the caller instead, as it would out of a nursery."""
    plans = iter([(0.8, ValueError("first")), (1.0, _Defect("hedge"))])

    async def poll() -> str:
        after, error = next(plans)
        await trio.sleep(after)
        raise error

    with pytest.raises(_Defect, match="hedge"):
        await hedged("x", poll, delay=0.5)
    assert trio.current_time() == pytest.approx(1.5)
