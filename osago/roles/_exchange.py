"""One insurer exchange: submit (once), then poll on a drift-free schedule until the answer,
or, for an insurer in callback mode, wait for its callback (the api settles it) with a
sparse safety net: the store is asked first, the insurer polled only if the answer is missing.

Every call goes through the insurer's guard (retry, breaker, bulkhead, attempt timeout; see
:mod:`osago.insurers.resilient`). The caller owns the overall deadline. The outcome is
classified for the user: offer, refused, unavailable (the breaker stays open past the
user's deadline: reported at once), failed (transient errors until the deadline, or a
permanent one). The deadline case (timed out) is the keeper's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

import trio

from osago.clock import Clock
from osago.errors import CircuitOpen, InsurerError, ResilienceError, StoreError
from osago.insurers import Quote
from osago.insurers.resilient import GuardedInsurer
from osago.models import Exchange, Outcome, OutcomeKind, Step
from osago.roles._patience import patiently

__all__ = ["Aids", "Record", "Settled", "Steps", "outcome_of", "run_exchange"]

T = TypeVar("T")

# Remembers [(correlation id, the insurer's id)] soon, so a redelivery polls instead of
# resubmitting (a resubmit is harmless: the correlation id is the idempotency key).
Record = Callable[[list[tuple[UUID, str]]], None]
# Whether the exchange was settled elsewhere (its callback reached the api): the store says.
Settled = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Aids:
    """What one exchange works with besides itself: its insurer's guard, where to record the
    submission, the wall clock, its steps (for the timeline), the store's word on whether
    it was settled elsewhere (callback mode), and how it sleeps until its next call (a
    shared :class:`osago.alarms.Alarms`, so a waiting exchange holds no cancel scope)."""

    guard: GuardedInsurer
    record: Record
    clock: Clock
    steps: Steps
    settled: Settled
    sleep_until: Callable[[float], Awaitable[None]]


# The longest gap between safety polls of one exchange (callback mode).
_SAFETY_POLL_MAX_GAP = 60.0


class _AnsweredByCallback(Exception):
    """The safety check found the exchange settled: nothing left to do here."""


log = logging.getLogger("osago.worker")


class Steps:
    """What the worker did in one exchange, for its timeline: bounded (the first steps and
    the latest are kept; a long wait polls about once a second), cheap to note."""

    KEEP = 120
    __slots__ = ("_clock", "done")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.done: list[Step] = []

    def note(self, what: str) -> None:
        self.done.append((round(self._clock.now(), 3), what))
        if len(self.done) > self.KEEP:
            del self.done[self.KEEP // 2]


async def _safety_net(aids: Aids, remote_id: str, start: float, deadline: float) -> Quote:
    """Callback mode: the answer comes to the api. Every ``safety_poll_interval`` seconds ask
    the store whether it came (one batched read, no call to the insurer). Only when it has
    not is the insurer polled, in case its callback was lost: at the first check, then at
    gaps that double from that interval up to a minute (so a slow insurer with thousands of
    calculations pending is not polled as if it had no callbacks), and once just before the
    user's deadline, so an answer whose callback was lost still makes it in time. A callback
    that came within the interval needs no poll at all. Why not wait for the deadline
    first: a lost callback's offer then reached the user 57 s after the insurer had it (the
    realistic profile loses 2 %: callback wait p99). A safety poll that fails ends nothing:
    the callback may still come, the next check looks again."""
    guard, settled, steps = aids.guard, aids.settled, aids.steps
    steps.note("waiting for the callback")
    c = guard.config
    every = c.safety_poll_interval
    due, gap = every, every
    poll_at = every
    last_chance = deadline - start - c.poll_timeout - 1.0
    while True:
        wake = min(due, poll_at)  # the last chance falls between two checks
        await aids.sleep_until(start + wake)
        try:
            done = await settled()
        except StoreError as exc:  # a safety check, not the job: look again next time
            steps.note(f"safety check failed: {exc}")
            done = False
        if done:
            steps.note("answered by callback")
            raise _AnsweredByCallback
        now = trio.current_time() - start
        if now >= poll_at:
            try:
                result = await guard.poll(remote_id)
            except (InsurerError, ResilienceError) as exc:
                steps.note(f"safety poll failed: {exc}")
                result = None
            if isinstance(result, Quote):
                steps.note("safety poll: answered")
                return result
            if result is not None:
                steps.note("safety poll: pending")
                gap = max(gap, result.poll_after or 0.0)
            poll_at = now + gap if now >= last_chance else min(now + gap, last_chance)
            gap = min(2 * gap, max(every, _SAFETY_POLL_MAX_GAP))
        # Drift-free: a check's own time (batched checks wait a linger) does not push the
        # next one later; a check that overran its slot is followed at once.
        if wake >= due:
            due = max(due + every, now)


async def _answer(ex: Exchange, aids: Aids) -> Quote:
    """Submit (once), then poll on the insurer's learned schedule until its answer. Each
    call is made patiently (:mod:`osago.roles._patience`): a transient failure is asked
    again while the user's deadline allows."""
    guard, record, clock, steps = aids.guard, aids.record, aids.clock, aids.steps
    deadline = clock.trio_time(ex.deadline_at)

    def patient(call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return patiently(
            call,
            breaker=guard.breaker,
            min_interval=guard.config.schedule.min_interval,
            outage=guard.config.outage_patience,
            deadline=deadline,
            sleep_until=aids.sleep_until,
            note=steps.note,
        )

    remote_id = ex.remote_id
    fresh = remote_id is None
    if remote_id is None:
        sent = clock.now()

        def submit() -> Awaitable[str]:
            nonlocal sent
            sent = clock.now()  # the try that got through: not the waits before it
            return guard.submit(ex.correlation_id, ex.request)

        remote_id = await patient(submit)
        # The insurer's clock starts when it takes the request: after our send, before its
        # answer returns. Answer times are learned from the send (at least the insurer's
        # own time) and polls are scheduled from the return (no earlier than its start), so
        # a poll is never early: an early one costs a rate limit (1 s) more. Counted from
        # the return, a slow submit answer taught times short by its latency, and later
        # polls came early (p99 wait 1.1 s where the answers came at fixed times). The
        # price: a poll may come as late as the learned sends' queueing (bulkhead, loop).
        submitted = clock.now()
        record([(ex.correlation_id, remote_id)])
        steps.note(f"submitted as {remote_id}")
        log.info("calculation %s: submitted to %s as %s", ex.calculation_id, ex.insurer, remote_id)
    else:
        # Resumed: catch up at once, then follow the schedule (nothing is learned from it).
        sent = submitted = ex.created_at
        steps.note(f"resumed polling {remote_id}")
        log.info("calculation %s: resuming %s poll of %s", ex.calculation_id, ex.insurer, remote_id)
    c = guard.config
    # Poll times are seconds since the submit; `start` puts them on Trio's clock (drift-free).
    start = trio.current_time() - (clock.now() - submitted)
    if c.callback:
        return await _safety_net(aids, remote_id, start, deadline)
    # Ask at once when resuming (catch up) or long-polling (the insurer holds the request
    # until the answer is ready); else when the learned schedule says.
    if fresh and not c.long_poll:
        due = guard.answers.next_poll(None)
    else:
        due = trio.current_time() - start
    while True:
        await aids.sleep_until(start + due)
        polled = trio.current_time() - start
        result = await patient(lambda: guard.poll(remote_id))
        # The rate limit counts requests. A poll whose first request failed sent its retry
        # (or hedge) later: the schedule spaces the next poll from the end of this one.
        last = trio.current_time() - start
        steps.note("polled: answered" if isinstance(result, Quote) else "polled: pending")
        if isinstance(result, Quote):
            if fresh and isinstance(result.ready_at, float | int):
                guard.answers.record(result.ready_at - sent)
            return result
        if c.long_poll:  # held until now: ask again at once, within the rate limit and hint
            gap = max(c.schedule.min_interval, result.poll_after or 0.0)
            due = max(trio.current_time() - start, polled + gap)
        elif clock.now() >= ex.deadline_at:  # the late window: poll gently
            due = polled + max(c.late_poll_interval, result.poll_after or 0.0)
        else:
            due = guard.answers.next_poll(last, hint=result.poll_after)


async def run_exchange(ex: Exchange, aids: Aids) -> Outcome | None:
    """Run (or resume) ``ex`` to its outcome, noting its steps; None when its callback
    settled it meanwhile. Store errors propagate (the job is NACKed)."""
    guard, clock, steps = aids.guard, aids.clock, aids.steps
    try:
        quote = await _answer(ex, aids)
    except _AnsweredByCallback:
        return None
    except CircuitOpen as exc:
        steps.note("not called: the breaker is open")
        return Outcome(
            OutcomeKind.UNAVAILABLE,
            received_at=clock.now(),
            message=f"{guard.config.name} is not available right now",
            retry_after=round(exc.retry_after, 3),
        )
    except (InsurerError, ResilienceError) as exc:
        steps.note(f"gave up: {exc}")
        log.warning("calculation %s: %s failed: %s", ex.calculation_id, ex.insurer, exc)
        # The user gets a plain sentence; the technical cause stays in the log and `error`.
        return Outcome(
            OutcomeKind.FAILED,
            received_at=clock.now(),
            message=f"{guard.config.name} could not calculate a price right now",
            error=str(exc),
        )
    return outcome_of(quote, ex.correlation_id, clock.now())


def outcome_of(quote: Quote, correlation_id: UUID, received_at: float) -> Outcome:
    """The outcome an insurer's final answer gives exchange ``correlation_id``, polled or
    called back."""
    if quote.correlation_id != correlation_id:
        return Outcome(
            OutcomeKind.FAILED,
            received_at=received_at,
            message=f"answer for {quote.correlation_id}, not {correlation_id}",
        )
    if quote.status == "ready":
        return Outcome(
            OutcomeKind.OFFER,
            received_at=received_at,
            premium=quote.premium,
            ready_at=quote.ready_at,
            message=quote.message,
            pool=quote.pool,
            breakdown=quote.breakdown,
        )
    return Outcome(
        OutcomeKind.REFUSED, received_at=received_at, message=quote.message, ready_at=quote.ready_at
    )
