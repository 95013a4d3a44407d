"""Retry on MockClock: exact virtual times."""

from __future__ import annotations

import itertools
import random

import pytest
import trio
from trio.testing import MockClock

from osago.errors import InsurerRejected, InsurerUnavailable, ResultRejected
from osago.resilience import BudgetPolicy, RetryBudget, RetryPolicy, backoff, retrying
from osago.resilience.events import ResilienceEvent, RetryGaveUp, RetryScheduled
from tests.cycles import cyclic_garbage


class Ceiling:
    """An rng that always picks the top of the jitter range: exact, predictable delays."""

    def uniform(self, a: float, b: float) -> float:
        return b


def unavailable(retry_after: float | None = None) -> InsurerUnavailable:
    return InsurerUnavailable("x", "503", status=503, retry_after=retry_after)


async def failing_times(n_failures: int, policy: RetryPolicy, **kw: object) -> list[float]:
    times: list[float] = []
    async for attempt in retrying(on=InsurerUnavailable, policy=policy, rng=Ceiling(), **kw):  # type: ignore[arg-type]
        with attempt:
            times.append(trio.current_time())
            if len(times) <= n_failures:
                raise unavailable()
    return times


async def test_exponential_backoff_with_cap(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(attempts=6, initial=0.1, multiplier=2.0, max_delay=0.5)
    times = await failing_times(5, policy)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_full_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(initial=0.1, multiplier=3.0, max_delay=1.0)
    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = min(1.0, 0.1 * 3.0 ** (attempt - 1))
        samples = [backoff(policy, attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in samples)
        assert max(samples) > 0.8 * ceiling  # it really spreads over the range


async def test_gives_up_after_the_attempts_with_the_last_error(autojump_clock: MockClock) -> None:
    events: list[ResilienceEvent] = []
    errors = [unavailable(), unavailable(), InsurerUnavailable("x", "last")]

    async def run() -> None:
        async for attempt in retrying(
            on=InsurerUnavailable,
            policy=RetryPolicy(attempts=3),
            hooks=[events.append],
            name="x",
            rng=Ceiling(),
        ):
            with attempt:
                raise errors[attempt.number - 1]

    with pytest.raises(InsurerUnavailable, match="last"):
        await run()
    assert [type(e) for e in events] == [RetryScheduled, RetryScheduled, RetryGaveUp]
    assert isinstance(events[-1], RetryGaveUp)
    assert events[-1].reason == "attempts"
    assert trio.current_time() == pytest.approx(0.1 + 0.2)


async def test_giving_up_leaves_no_cycle_for_the_collector(autojump_clock: MockClock) -> None:
    # The error raised holds the frames it passed: were they to hold it too, it would wait
    # for a full collection, minutes away (osago/collector.py), with every one of them.
    class Last(InsurerUnavailable):
        pass

    async def run() -> None:
        async for attempt in retrying(
            on=InsurerUnavailable, policy=RetryPolicy(attempts=2), rng=Ceiling()
        ):
            with attempt:
                raise Last("x", "last") if attempt.number == 2 else unavailable()

    with cyclic_garbage() as found, pytest.raises(Last):
        await run()
    assert [o for o in found if isinstance(o, InsurerUnavailable)] == []


async def test_errors_not_named_in_on_are_not_retried(autojump_clock: MockClock) -> None:
    calls = 0

    async def run() -> None:
        nonlocal calls
        async for attempt in retrying(on=InsurerUnavailable, policy=RetryPolicy(attempts=5)):
            with attempt:
                calls += 1
                raise InsurerRejected("x", "400")

    with pytest.raises(InsurerRejected):
        await run()
    assert calls == 1


async def test_predicate_on_exceptions(autojump_clock: MockClock) -> None:
    calls = 0
    async for attempt in retrying(
        on=lambda e: getattr(e, "status", None) == 429, policy=RetryPolicy(attempts=3)
    ):
        with attempt:
            calls += 1
            if calls == 1:
                raise InsurerUnavailable("x", "429", status=429)
    assert calls == 2


async def test_never_sleeps_past_the_deadline(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(attempts=10, initial=0.4, multiplier=2.0, max_delay=10.0)
    events: list[ResilienceEvent] = []
    with trio.move_on_after(1.0) as outer, pytest.raises(InsurerUnavailable):
        await failing_times(10, policy, hooks=[events.append])
    # attempts at 0 and 0.4; the next delay (0.8) would end at 1.2 > 1.0: give up at 0.4.
    assert not outer.cancelled_caught
    assert trio.current_time() == pytest.approx(0.4)
    assert isinstance(events[-1], RetryGaveUp)
    assert events[-1].reason == "deadline"


async def test_retry_after_hint_is_honoured(autojump_clock: MockClock) -> None:
    times = []
    async for attempt in retrying(
        on=InsurerUnavailable, policy=RetryPolicy(attempts=2), rng=Ceiling()
    ):
        with attempt:
            times.append(trio.current_time())
            if len(times) == 1:
                raise unavailable(retry_after=3.0)
    assert times == [0.0, 3.0]


async def test_result_predicate_retries_refused_results(autojump_clock: MockClock) -> None:
    answers = iter([503, 503, 200])
    got = None
    async for attempt in retrying(
        on=(), on_result=lambda r: r == 503, policy=RetryPolicy(attempts=3)
    ):
        with attempt:
            got = attempt.check(next(answers))
    assert got == 200

    async def always_503() -> None:
        async for attempt in retrying(
            on=(), on_result=lambda r: r == 503, policy=RetryPolicy(attempts=2)
        ):
            with attempt:
                attempt.check(503)

    with pytest.raises(ResultRejected) as info:
        await always_503()
    assert info.value.value == 503


async def test_budget_caps_retries_to_a_ratio_of_calls(autojump_clock: MockClock) -> None:
    budget = RetryBudget(BudgetPolicy(ratio=0.5, window=10.0, min_retries=2))
    policy = RetryPolicy(attempts=3, initial=0.01)
    attempts = 0

    async def call() -> None:
        nonlocal attempts
        async for attempt in retrying(on=InsurerUnavailable, policy=policy, budget=budget):
            with attempt:
                attempts += 1
                raise unavailable()

    for _ in range(6):
        with pytest.raises(InsurerUnavailable):
            await call()
    # 6 calls allow max(2, 0.5 * 6) = 3 retries in the window: 6 first attempts + 3 retries.
    assert attempts == 9
    assert budget.retries_in_window == 3
    await trio.sleep(10.0)  # the window slides: the budget refills
    with pytest.raises(InsurerUnavailable):
        await call()
    assert attempts == 12


async def test_on_is_mandatory() -> None:
    with pytest.raises(TypeError):
        retrying()  # type: ignore[call-arg]
