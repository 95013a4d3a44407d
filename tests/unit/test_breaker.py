"""Circuit breaker on MockClock, plus a hypothesis state machine: never stuck, never negative."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from osago.errors import CircuitOpen, InsurerRejected, InsurerUnavailable
from osago.resilience import BreakerPolicy, Bulkhead, BulkheadPolicy, CircuitBreaker, State, hedged
from osago.resilience.events import BreakerTransition, ResilienceEvent

POLICY = BreakerPolicy(
    window="count",
    window_size=10,
    minimum_calls=4,
    failure_rate=0.5,
    slow_call_duration=1.0,
    slow_call_rate=0.75,
    open_wait=2.0,
    open_wait_multiplier=2.0,
    max_open_wait=5.0,
    half_open_calls=2,
    half_open_max_wait=3.0,
)


async def call(b: CircuitBreaker, *, fail: bool = False, duration: float = 0.0) -> None:
    async with b:
        await trio.sleep(duration)
        if fail:
            raise InsurerUnavailable("x", "boom")


async def outcome(b: CircuitBreaker, **kw: object) -> str:
    try:
        await call(b, **kw)  # type: ignore[arg-type]
    except CircuitOpen:
        return "rejected"
    except InsurerUnavailable:
        return "failed"
    return "ok"


async def test_opens_at_the_failure_threshold_after_minimum_calls(
    autojump_clock: MockClock,
) -> None:
    b = CircuitBreaker("x", POLICY)
    assert [await outcome(b, fail=True) for _ in range(3)] == ["failed"] * 3
    assert b.state is State.CLOSED  # 3 < minimum_calls
    assert await outcome(b, fail=True) == "failed"
    assert b.state is State.OPEN
    ran = False
    with pytest.raises(CircuitOpen) as info:
        async with b:
            ran = True
    assert not ran
    assert info.value.retry_after == pytest.approx(2.0)


async def test_failure_rate_below_threshold_stays_closed(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY)
    for i in range(10):
        await outcome(b, fail=i in (3, 6, 9))  # never 50 % once 4 calls are in
    assert b.state is State.CLOSED
    assert b.counts == (10, 3, 0)


async def test_slow_calls_open_it(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY)
    for _ in range(4):
        await outcome(b, duration=1.5)
    assert b.state is State.OPEN


async def test_half_open_admits_exactly_n_trials_then_closes(autojump_clock: MockClock) -> None:
    events: list[ResilienceEvent] = []
    b = CircuitBreaker("x", POLICY, hooks=[events.append])
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    assert b.state is State.HALF_OPEN
    results: list[str] = []
    async with trio.open_nursery() as n:
        for _ in range(4):
            n.start_soon(lambda: _append(results, outcome(b, duration=0.5)))
    assert sorted(results) == ["ok", "ok", "rejected", "rejected"]
    assert b.state is State.CLOSED
    assert [(e.old, e.new) for e in events if isinstance(e, BreakerTransition)] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_waiters_wake_when_the_trials_close_it_not_at_the_rejections_retry_after(
    autojump_clock: MockClock,
) -> None:
    b = CircuitBreaker("x", POLICY)
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    woke: list[tuple[float, State]] = []

    async def rejected_then_wait() -> None:
        with pytest.raises(CircuitOpen) as info:
            async with b:
                pass
        assert info.value.retry_after == pytest.approx(2.9)  # the half-open max wait left
        with trio.move_on_after(info.value.retry_after):
            await b.wait_for_change()
        woke.append((trio.current_time(), b.state))

    start = trio.current_time()
    async with trio.open_nursery() as n:
        for _ in range(2):  # the two trials, 0.5 s each
            n.start_soon(lambda: call(b, duration=0.5))
        await trio.sleep(0.1)
        n.start_soon(rejected_then_wait)
    assert woke == [(pytest.approx(start + 0.5), State.CLOSED)]


async def _append(results: list[str], coro: object) -> None:
    results.append(await coro)  # type: ignore[misc]


async def test_failed_trial_reopens_with_a_longer_wait(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY)
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    await outcome(b, fail=True)
    await outcome(b)
    assert b.state is State.OPEN  # 1 of 2 trials failed = 50 %
    await trio.sleep(3.9)
    assert b.state is State.OPEN  # the wait doubled to 4 s
    await trio.sleep(0.1)
    assert b.state is State.HALF_OPEN
    await outcome(b, fail=True)
    await outcome(b, fail=True)
    await trio.sleep(4.99)
    assert b.state is State.OPEN  # capped at max_open_wait = 5 s
    await trio.sleep(0.01)
    assert b.state is State.HALF_OPEN


async def test_down_for_counts_from_the_first_opening_through_reopenings_until_closed(
    autojump_clock: MockClock,
) -> None:
    b = CircuitBreaker("x", POLICY)
    assert b.down_for() == 0.0
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    await outcome(b, fail=True)
    await outcome(b, fail=True)  # the trials reopen it: still the same outage
    await trio.sleep(4.0)
    assert b.down_for() == pytest.approx(6.0)
    await outcome(b)
    await outcome(b)  # the trials close it
    assert b.state is State.CLOSED
    assert b.down_for() == 0.0


async def test_half_open_cannot_get_stuck(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY)
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    async with trio.open_nursery() as n:  # two trials that hang
        for _ in range(2):
            n.start_soon(lambda: call(b, duration=100.0))
        await trio.sleep(2.99)
        assert b.state is State.HALF_OPEN
        await trio.sleep(0.01)
        assert b.state is State.OPEN  # half_open_max_wait = 3 s
        n.cancel_scope.cancel()
    await trio.sleep(5.0)
    assert b.state is State.HALF_OPEN
    assert await outcome(b) == "ok"
    assert await outcome(b) == "ok"
    assert b.state is State.CLOSED


async def test_cancelled_trial_frees_its_slot(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY)
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(2.0)
    with trio.move_on_after(0.1):
        await call(b, duration=1.0)
    assert b.trials_admitted == 0
    assert [await outcome(b), await outcome(b)] == ["ok", "ok"]
    assert b.state is State.CLOSED


async def test_ignored_errors_do_not_count(autojump_clock: MockClock) -> None:
    b = CircuitBreaker("x", POLICY, is_failure=lambda e: isinstance(e, InsurerUnavailable))
    for _ in range(10):
        with pytest.raises(InsurerRejected):
            async with b:
                raise InsurerRejected("x", "400")
    assert b.state is State.CLOSED
    assert b.counts == (0, 0, 0)


async def test_time_window_forgets_old_outcomes(autojump_clock: MockClock) -> None:
    policy = BreakerPolicy(window="time", window_size=5.0, minimum_calls=4, failure_rate=0.5)
    b = CircuitBreaker("x", policy)
    for _ in range(3):
        await outcome(b, fail=True)
    await trio.sleep(5.0)
    await outcome(b, fail=True)
    assert b.state is State.CLOSED  # the first 3 slid out of the window
    assert b.counts == (1, 1, 0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ok", "fail", "slow", "cancel"]),
            st.floats(min_value=0.0, max_value=4.0),
        ),
        max_size=60,
    )
)
def test_no_sequence_leaves_it_stuck_or_negative(steps: list[tuple[str, float]]) -> None:
    async def scenario() -> None:
        b = CircuitBreaker("x", POLICY)
        for kind, pause in steps:
            await trio.sleep(pause)
            try:
                if kind == "cancel":
                    with trio.move_on_after(0.01):
                        await call(b, duration=1.0)
                else:
                    await call(b, fail=kind == "fail", duration=1.5 if kind == "slow" else 0.0)
            except (CircuitOpen, InsurerUnavailable):
                pass
            calls, failures, slow = b.counts
            assert 0 <= failures <= calls
            assert 0 <= slow <= calls
            assert 0 <= b.trials_admitted <= POLICY.half_open_calls
        # Whatever happened, a healthy insurer closes it again within bounded time.
        await trio.sleep(POLICY.max_open_wait + POLICY.half_open_max_wait)
        for _ in range(POLICY.half_open_calls + POLICY.minimum_calls):
            try:
                await call(b)
            except CircuitOpen:
                await trio.sleep(POLICY.max_open_wait)
        assert b.state is State.CLOSED

    trio.run(scenario, clock=MockClock(autojump_threshold=0))


async def test_bulkhead_rejects_after_its_wait(autojump_clock: MockClock) -> None:
    bulkhead = Bulkhead("x", BulkheadPolicy(max_concurrent=2, max_wait=0.5))
    outcomes: list[tuple[str, float]] = []

    async def use(hold: float) -> None:
        try:
            async with bulkhead:
                await trio.sleep(hold)
            outcomes.append(("done", trio.current_time()))
        except Exception as exc:
            outcomes.append((type(exc).__name__, trio.current_time()))

    async with trio.open_nursery() as n:
        n.start_soon(use, 2.0)
        n.start_soon(use, 0.3)
        await trio.sleep(0.01)
        n.start_soon(use, 0.3)  # waits until 0.3 for the short one's slot, holds it to 0.6
        await trio.sleep(0.01)
        n.start_soon(use, 0.1)  # waits 0.5 (to 0.52) and gives up: no slot frees before 0.6
    got = [(kind, round(t, 6)) for kind, t in sorted(outcomes, key=lambda o: o[1])]
    assert got == [("done", 0.3), ("BulkheadFull", 0.52), ("done", 0.6), ("done", 2.0)]


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


@pytest.mark.parametrize(
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
async def test_failures_fail_the_hedge_only_when_no_call_is_left(
    autojump_clock: MockClock,
    first: tuple[float, str],
    second: tuple[float, str] | None,
    outcome: str,
    at: float,
) -> None:
    plans = iter([first, second])
    calls = 0

    async def poll() -> str:
        nonlocal calls
        calls += 1
        plan = next(plans)
        assert plan is not None
        await trio.sleep(plan[0])
        if plan[1] != "ok":
            raise ValueError(plan[1])
        return plan[1]

    if outcome == "ok":
        assert await hedged("x", poll, delay=0.5) == "ok"
    else:
        with pytest.raises(ValueError, match=outcome):
            await hedged("x", poll, delay=0.5)
    assert (calls, trio.current_time()) == (1 if second is None else 2, pytest.approx(at))


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


async def test_reading_the_state_changes_nothing_and_transitions_keep_their_dates(
    autojump_clock: MockClock,
) -> None:
    seen: list[ResilienceEvent] = []
    b = CircuitBreaker("x", POLICY, hooks=(seen.append,))
    start = trio.current_time()
    for _ in range(4):
        await outcome(b, fail=True)
    await trio.sleep(7.0)  # the 2 s open wait elapsed long ago
    fired = len(seen)
    assert b.state is State.HALF_OPEN
    assert b.state is State.HALF_OPEN
    assert len(seen) == fired  # a gauge may read it as often as it likes
    assert await outcome(b) == "ok"  # the next call is a trial
    moves = [(e.new, e.at - start) for e in seen if isinstance(e, BreakerTransition)]
    assert moves == [("open", 0.0), ("half_open", 2.0)]  # dated when due, not when seen


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
