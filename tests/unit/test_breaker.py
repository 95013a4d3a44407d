"""Circuit breaker on MockClock, plus a hypothesis state machine: never stuck, never negative."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from osago.errors import CircuitOpen, InsurerRejected, InsurerUnavailable
from osago.resilience import BreakerPolicy, Bulkhead, BulkheadPolicy, CircuitBreaker, State
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
