"""Patience on MockClock: transient failures are asked again until the deadline, with the
documented gaps; permanent ones and those with no time left propagate at once."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
import trio
from trio.testing import MockClock

from osago.clock import TrioWallClock
from osago.config import Settings
from osago.errors import AttemptTimeout, CircuitOpen, InsurerRejected, InsurerUnavailable
from osago.insurers import insurers_for
from osago.insurers.resilient import GuardedInsurer
from osago.models import Exchange, OutcomeKind
from osago.roles._exchange import Aids, Steps, run_exchange
from osago.roles._patience import MAX_GAP, patiently
from tests.fakes import FakeInsurers
from tests.unit import test_flow
from tests.unit.test_flow import harness, kinds


class _Breaker:
    def __init__(self, down_for: float = 0.0) -> None:
        self._changed = trio.Event()
        self._down_for = down_for

    def down_for(self) -> float:
        return self._down_for

    def change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self) -> None:
        await self._changed.wait()


def _failing(errors: list[BaseException], calls: list[float]) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        calls.append(trio.current_time())
        if errors:
            raise errors.pop(0)
        return "answer"

    return call


async def _patiently(
    call: Callable[[], Awaitable[str]],
    deadline: float,
    breaker: _Breaker | None = None,
    notes: list[str] | None = None,
) -> str:
    return await patiently(
        call,
        breaker=breaker or _Breaker(),
        min_interval=1.0,
        outage=15.0,
        deadline=deadline,
        sleep_until=trio.sleep_until,
        note=(notes if notes is not None else []).append,
    )


async def test_transient_failures_are_asked_again_at_doubling_jittered_gaps(
    autojump_clock: MockClock,
) -> None:
    calls: list[float] = []
    errors: list[BaseException] = [AttemptTimeout("x", 2.0) for _ in range(6)]
    assert await _patiently(_failing(errors, calls), deadline=100.0) == "answer"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    ceilings = [min(MAX_GAP, 2.0**n) for n in range(7)]
    assert len(gaps) == 6
    for gap, ceiling in zip(gaps, ceilings, strict=False):
        assert 0.5 * ceiling <= gap <= ceiling


async def test_no_time_left_or_a_permanent_failure_propagates_at_once(
    autojump_clock: MockClock,
) -> None:
    calls: list[float] = []
    with pytest.raises(InsurerUnavailable):  # the next ask (>= 0.5 s) would be past it
        await _patiently(_failing([InsurerUnavailable("x", "503")], calls), deadline=0.4)
    with pytest.raises(InsurerRejected):
        await _patiently(_failing([InsurerRejected("x", "400")], calls), deadline=100.0)
    assert calls == [0.0, 0.0]


async def test_an_open_breaker_is_waited_for_until_it_changes_or_its_next_trial(
    autojump_clock: MockClock,
) -> None:
    breaker = _Breaker()
    calls: list[float] = []
    errors: list[BaseException] = [CircuitOpen("x", 5.0), CircuitOpen("x", 5.0)]

    async def close_it_at_2() -> None:
        await trio.sleep(2.0)
        breaker.change()

    async with trio.open_nursery() as n:
        n.start_soon(close_it_at_2)
        assert await _patiently(_failing(errors, calls), deadline=100.0, breaker=breaker) == (
            "answer"
        )
    assert calls[0] == 0.0
    assert 2.0 <= calls[1] <= 3.0  # woke at the change, plus up to min_interval of jitter
    assert calls[1] + 5.0 <= calls[2] <= calls[1] + 6.0  # no change: at its next trial
    now = trio.current_time()
    with pytest.raises(CircuitOpen):  # its next trial is past the deadline: at once
        await _patiently(_failing([CircuitOpen("x", 50.0)], calls), deadline=now + 10.0)
    assert calls[-1] == now


async def test_a_breaker_open_for_the_outage_patience_is_not_waited_for(
    autojump_clock: MockClock,
) -> None:
    """An insurer cut off for 15 s or more is an outage, not a blip: unavailable at once,
    though its next trial (5 s) is well within the deadline."""
    calls: list[float] = []
    notes: list[str] = []
    with pytest.raises(CircuitOpen):
        await _patiently(
            _failing([CircuitOpen("x", 5.0)], calls),
            deadline=100.0,
            breaker=_Breaker(down_for=15.0),
            notes=notes,
        )
    assert calls == [0.0]
    assert notes == ["breaker open for 15.0s: an outage, not waited for"]
    calls.clear()
    young = _failing([CircuitOpen("x", 5.0)], calls)  # open 14.9 s: still a blip
    assert await _patiently(young, deadline=100.0, breaker=_Breaker(down_for=14.9)) == "answer"
    assert 5.0 <= calls[1] <= 6.0


async def test_an_answer_time_is_learned_from_the_submit_that_got_through(
    autojump_clock: MockClock,
) -> None:
    """The insurer is down for the first 6 s; it answers 2 s after the submit it took. The
    schedule learns 2 s, not the 8 s since the first try."""
    clock = TrioWallClock(1_790_000_000.0)
    insurers = FakeInsurers(clock, {"aurora": 2.0})
    (config,) = insurers_for(Settings(insurer_codes=("aurora",)))
    trusting = replace(config, schedule=replace(config.schedule, warmup=1))  # one answer will do
    guard = GuardedInsurer(trusting, insurers, hooks=())
    ex = Exchange(
        uuid.uuid4(),
        uuid.uuid4(),
        "aurora",
        "user-42",
        {},
        created_at=clock.now(),
        deadline_at=clock.now() + 60.0,
        closes_at=clock.now() + 60.0,
        remote_id=None,
        outcome=None,
        closed=False,
    )

    async def settled() -> bool:
        return False

    aids = Aids(guard, lambda _: None, clock, Steps(clock), settled, trio.sleep_until)
    insurers.down.add("aurora")
    async with trio.open_nursery() as n:
        n.start_soon(_bring_back, insurers, 6.0)
        outcome = await run_exchange(ex, aids)
    assert outcome is not None
    assert outcome.kind is OutcomeKind.OFFER
    assert len(guard.answers) == 1
    # The first poll is due just after the one learned time: 2 s (plus the margin), not 8.
    assert guard.answers.next_poll(None) == pytest.approx(2.0 * 1.02 + 0.05)


async def _bring_back(insurers: FakeInsurers, after: float) -> None:
    await trio.sleep(after)
    insurers.down.clear()


async def test_errors_until_the_deadline_are_reported_before_it(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 0.0, "borealis": 0.0}) as h:
        h.insurers.flaky_polls["aurora"] = 10**6
        await h.submit()
        await trio.sleep(10)
    failed = [(t, e) for t, e in h.events if e["type"] == "no_offer"]
    # The errors, asked again, opened its breaker (10 calls); the next trial (5 s on) is
    # past the deadline, so it is reported then.
    assert [(e["insurer"], e["outcome"]) for _, e in failed] == [("aurora", "unavailable")]
    assert failed[0][0] < test_flow.SETTINGS.deadline_seconds
    assert h.events[-1][1]["type"] == "completed"


async def test_more_errors_than_the_attempts_allow_are_asked_again_while_time_is_left(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 0.0, "borealis": 0.0}) as h:
        h.insurers.flaky_polls["aurora"] = 6  # the guard gives up after 4 attempts
        await h.submit()
        await trio.sleep(10)
    assert sorted(k for _, k, _ in kinds(h)) == ["completed", "offer", "offer"]
