"""The poll schedule: learned from answer times, bounded by the insurer's rate limit and hints."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from osago.insurers.schedule import AnswerTimes, SchedulePolicy
from tests.unit import test_flow
from tests.unit.test_flow import harness, kinds

POLICY = SchedulePolicy(min_interval=1.0, max_interval=2.0, target=0.25, margin=0.05, warmup=8)


def test_cold_it_polls_at_the_rate_limit() -> None:
    times = AnswerTimes(POLICY)
    assert times.next_poll(None) == 1.0
    assert times.next_poll(1.0) == 2.0
    assert times.next_poll(2.0, hint=3.5) == 5.5  # the insurer's hint is honoured


def test_learned_it_polls_just_after_the_usual_answer_time() -> None:
    times = AnswerTimes(POLICY)
    for _ in range(20):
        times.record(4.0)
    first = times.next_poll(None)
    assert 4.0 < first <= 4.0 + 0.05 + 0.08  # one poll catches it
    assert times.next_poll(first) == first + 2.0  # later than ever seen: the tail, sparse


def test_dense_where_answers_arrive() -> None:
    times = AnswerTimes(POLICY)
    for t in [0.5 + 0.1 * i for i in range(40)]:  # answers spread over 0.5-4.4 s
        times.record(t)
    assert times.next_poll(None) < 1.6  # a quarter of them have arrived by then
    assert times.next_poll(2.0) == 3.0  # dense: the rate limit binds


def test_a_sparse_tail_is_polled_like_an_unknown_one() -> None:
    """A gap between rare late answers is sampling noise, not a stretch where answers never
    come: once the earliest learned time has passed, no gap exceeds max_interval."""
    times = AnswerTimes(POLICY)
    for _ in range(100):
        times.record(2.0)
    times.record(20.0)
    times.record(40.0)
    assert times.next_poll(None) == pytest.approx(2.0 + 0.05 + 0.04)  # skipped to the first
    assert times.next_poll(5.0) == 7.0  # not 20.45: an answer at 6 s would wait 14 s


def test_old_answers_slide_out_of_the_window() -> None:
    times = AnswerTimes(replace(POLICY, window=8))
    for _ in range(8):
        times.record(10.0)
    for _ in range(8):
        times.record(1.0)
    assert len(times) == 8
    assert times.next_poll(None) < 1.2


@given(
    st.lists(st.floats(0, 120, allow_nan=False), max_size=60),
    st.one_of(st.none(), st.floats(0, 100)),
    st.one_of(st.none(), st.floats(0, 10)),
)
def test_never_above_the_rate_limit_never_below_the_hint(
    samples: list[float], last: float | None, hint: float | None
) -> None:
    times = AnswerTimes(POLICY)
    for s in samples:
        times.record(s)
    nxt = times.next_poll(last, hint=hint)
    since = 0.0 if last is None else last
    if last is not None:
        assert nxt >= last + POLICY.min_interval
    assert nxt >= since + (hint or 0.0)
    bound = since + max(POLICY.max_interval, hint or 0.0, POLICY.min_interval)
    ahead = [s for s in samples if s > since]
    if len(samples) >= POLICY.warmup and len(ahead) == len(samples):
        # before the earliest answer ever seen: that stretch is skipped in one step
        bound = max(bound, min(ahead) * 1.02 + POLICY.margin)
    assert nxt <= bound


async def test_a_worker_learns_and_polls_once_per_answer(
    autojump_clock: MockClock, monkeypatch: object
) -> None:
    monkeypatch.setattr(test_flow, "EVERY_QUARTER", POLICY)  # type: ignore[attr-defined]
    async with harness({"aurora": 4.0, "borealis": 4.0}) as h:
        for _ in range(12):
            await h.submit()
            await trio.sleep(8)
        polls_before = h.insurers.polls
        await h.submit()
        await trio.sleep(8)
        assert h.insurers.polls - polls_before == 2  # one poll per insurer, right after 4 s
    offers = [t for t, kind, _ in kinds(h) if kind == "offer"]
    assert len(offers) == 26


async def test_slow_submit_answers_while_learning_do_not_make_later_polls_early(
    autojump_clock: MockClock, monkeypatch: object
) -> None:
    """The insurer's clock starts when it takes the submit, before its answer reaches us. An
    answer time counted from the submit's return came out short by that latency, and the
    learned schedule then polled before the answer was ready and waited a rate limit more."""
    monkeypatch.setattr(test_flow, "EVERY_QUARTER", POLICY)  # type: ignore[attr-defined]
    async with harness({"aurora": 4.0, "borealis": 4.0}) as h:
        h.insurers.submit_latency["aurora"] = 0.3  # a busy network while it learns
        for _ in range(12):
            await h.submit()
            await trio.sleep(8)
        h.insurers.submit_latency.clear()
        polls_before = h.insurers.polls
        last = await h.submit()
        await trio.sleep(8)
        assert h.insurers.polls - polls_before == 2  # one poll each: none came too early
    offers = [
        e["insurer"]
        for _, e in h.events
        if e["calculation_id"] == str(last.id) and e["type"] == "offer"
    ]
    assert sorted(offers) == ["aurora", "borealis"]


async def test_the_insurers_hint_spaces_the_polls(
    autojump_clock: MockClock, monkeypatch: object
) -> None:
    monkeypatch.setattr(test_flow, "EVERY_QUARTER", POLICY)  # type: ignore[attr-defined]
    async with harness({"aurora": 4.5, "borealis": 1.0}) as h:
        h.insurers.hints["aurora"] = 3.0
        await h.submit()
        await trio.sleep(8)
    aurora = [t for code, t in h.insurers.poll_times if code == "aurora"]
    gaps = [b - a for a, b in itertools.pairwise(aurora)]
    assert gaps
    assert all(g >= 3.0 for g in gaps)


async def test_retries_within_a_poll_do_not_bring_the_next_poll_closer(
    autojump_clock: MockClock, monkeypatch: object
) -> None:
    """The rate limit counts requests: a poll retried after a 503 sent its last request
    later than its first, and the next poll keeps min_interval from that one."""
    monkeypatch.setattr(test_flow, "EVERY_QUARTER", POLICY)  # type: ignore[attr-defined]
    async with harness({"aurora": 3.5, "borealis": 1.0}) as h:
        h.insurers.flaky_polls["aurora"] = 2  # the first poll needs three requests
        await h.submit()
        await trio.sleep(8)
    aurora = [t for code, t in h.insurers.poll_times if code == "aurora"]
    assert len(aurora) >= 4
    gaps = [b - a for a, b in itertools.pairwise(aurora[2:])]  # from its last retry on
    assert gaps
    assert all(g >= POLICY.min_interval - 1e-9 for g in gaps)
