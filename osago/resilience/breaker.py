"""A circuit breaker per insurer, on Trio's clock: ``async with breaker:``.

States (resilience4j's model):

- CLOSED: calls run; outcomes go into a sliding window (the last N calls, or the last N
  seconds). Once it holds ``minimum_calls``, the breaker OPENS when the failure rate or the
  slow-call rate reaches its threshold.
- OPEN: calls are rejected with :class:`CircuitOpen` without running the body. After
  ``open_wait`` (multiplied by ``open_wait_multiplier`` for each reopening in a row, capped at
  ``max_open_wait``) the next call finds it HALF_OPEN.
- HALF_OPEN: exactly ``half_open_calls`` trial calls run; the rest are rejected. When all
  trials have an outcome, the same thresholds decide: CLOSED (fresh window, wait reset) or OPEN
  again. A trial that ends by cancellation frees its slot. If the trials do not finish within
  ``half_open_max_wait``, it goes back to OPEN: it can never stay stuck half-open (the bug in
  resilience4j issues #935 and #903).

Which exceptions count as failures is a predicate; others (and cancellation) are ignored.
Outcomes of calls admitted before a state change are ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import TracebackType
from typing import Literal

import trio

from osago.errors import CircuitOpen, ResilienceError
from osago.resilience.events import BreakerTransition, CallRejected, Hook, emit

__all__ = ["BreakerPolicy", "CircuitBreaker", "State"]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """Thresholds and timings; rates are fractions (0.5 = 50 %)."""

    window: Literal["count", "time"] = "count"
    window_size: float = 20
    minimum_calls: int = 10
    failure_rate: float = 0.5
    slow_call_duration: float = 5.0
    slow_call_rate: float = 1.0
    open_wait: float = 5.0
    open_wait_multiplier: float = 2.0
    max_open_wait: float = 60.0
    half_open_calls: int = 3
    half_open_max_wait: float = 10.0


def _default_failure(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, ResilienceError)


class _Window:
    """Outcomes of recent calls with running counts (never negative)."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self._policy = policy
        self._items: deque[tuple[float, bool, bool]] = deque()
        self.failures = 0
        self.slow = 0

    def __len__(self) -> int:
        return len(self._items)

    def _pop(self) -> None:
        _, failed, slow = self._items.popleft()
        self.failures -= failed
        self.slow -= slow

    def trim(self, now: float) -> None:
        if self._policy.window == "time":
            while self._items and self._items[0][0] <= now - self._policy.window_size:
                self._pop()

    def add(self, now: float, failed: bool, slow: bool) -> None:
        self._items.append((now, failed, slow))
        self.failures += failed
        self.slow += slow
        if self._policy.window == "count":
            while len(self._items) > self._policy.window_size:
                self._pop()
        self.trim(now)

    def tripped(self, minimum: int) -> str | None:
        n = len(self._items)
        if n == 0 or n < minimum:
            return None
        if self.failures / n >= self._policy.failure_rate:
            return f"failure rate {self.failures}/{n}"
        if self.slow / n >= self._policy.slow_call_rate:
            return f"slow-call rate {self.slow}/{n}"
        return None


@dataclass
class _Call:
    started: float
    generation: int
    trial: bool


class CircuitBreaker:
    """Protects one insurer. Shared by every call to it within a process."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        is_failure: Callable[[BaseException], bool] = _default_failure,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.name = name
        self.policy = policy
        self._is_failure = is_failure
        self._hooks = hooks
        self._state = State.CLOSED
        self._since = trio.current_time()
        self._generation = 0
        self._window = _Window(policy)
        self._open_wait = policy.open_wait
        self._open_until = 0.0
        self._trials_admitted = 0
        self._first_trial_at: float | None = None  # the half-open max wait runs from here
        # Half-open trials are judged by the same rates over exactly half_open_calls calls.
        self._trial_policy = replace(policy, window="count", window_size=policy.half_open_calls)
        self._trials = _Window(self._trial_policy)
        self._calls: dict[trio.lowlevel.Task, list[_Call]] = {}
        self._changed = trio.Event()  # set (and replaced) at every transition
        self._opened_at: float | None = None  # when it last left CLOSED

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The current state, read without side effects (no transition, no hook).

        Timed transitions are dated when they fall due, not when someone looks: an OPEN
        breaker whose wait has elapsed reads HALF_OPEN; HALF_OPEN trials that ran out of
        time read OPEN (and HALF_OPEN again once that wait elapsed too). The next call
        makes it so, with the same dates.
        """
        now = trio.current_time()
        if self._state is State.OPEN:
            return State.HALF_OPEN if now >= self._open_until else State.OPEN
        if self._state is State.HALF_OPEN and self._first_trial_at is not None:
            expired = self._first_trial_at + self.policy.half_open_max_wait
            if now >= expired:
                reopen = expired + self._next_open_wait()
                return State.HALF_OPEN if now >= reopen else State.OPEN
        return self._state

    @property
    def counts(self) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window: for tests and metrics."""
        return len(self._window), self._window.failures, self._window.slow

    @property
    def trials_admitted(self) -> int:
        return self._trials_admitted

    def down_for(self) -> float:
        """Seconds since the breaker last left CLOSED (0.0 while closed): how long the
        insurer has been cut off, through every reopening since."""
        if self._opened_at is None:
            return 0.0
        return trio.current_time() - self._opened_at

    async def wait_for_change(self) -> None:
        """Return at the breaker's next transition that a call makes (a trial's outcome
        closing or reopening it, a window tripping). Timed transitions are made lazily by
        the next call, so a waiter bounds this with the rejection's ``retry_after``."""
        await self._changed.wait()

    def _next_open_wait(self) -> float:
        """The wait of a reopening from HALF_OPEN: longer each time, capped."""
        return min(self._open_wait * self.policy.open_wait_multiplier, self.policy.max_open_wait)

    def _move(self, new: State, reason: str, now: float) -> None:
        old, self._state = self._state, new
        self._since = now
        self._generation += 1
        if new is State.OPEN:
            if old is State.CLOSED:
                self._opened_at = now
            if old is State.HALF_OPEN:
                self._open_wait = self._next_open_wait()
            self._open_until = now + self._open_wait
        elif new is State.HALF_OPEN:
            self._trials_admitted = 0
            self._first_trial_at = None
            self._trials = _Window(self._trial_policy)
        else:
            self._window = _Window(self.policy)
            self._open_wait = self.policy.open_wait
            self._opened_at = None
        emit(self._hooks, BreakerTransition(self.name, now, old.value, new.value, reason))
        self._changed.set()
        self._changed = trio.Event()

    def _tick(self, now: float) -> None:
        """Apply the timed transitions due by ``now``, each at the time it fell due."""
        while True:
            if self._state is State.OPEN and now >= self._open_until:
                self._move(State.HALF_OPEN, "open wait elapsed", self._open_until)
            elif (
                self._state is State.HALF_OPEN
                and self._first_trial_at is not None
                and now >= self._first_trial_at + self.policy.half_open_max_wait
            ):
                expired = self._first_trial_at + self.policy.half_open_max_wait
                self._move(State.OPEN, "half-open trials did not finish in time", expired)
            else:
                return

    def _reject(self, now: float, retry_after: float) -> CircuitOpen:
        emit(self._hooks, CallRejected(self.name, now, retry_after))
        return CircuitOpen(self.name, retry_after)

    # -- calls ---------------------------------------------------------------------------
    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        now = trio.current_time()
        self._tick(now)
        trial = False
        if self._state is State.OPEN:
            raise self._reject(now, self._open_until - now)
        if self._state is State.HALF_OPEN:
            if self._trials_admitted >= self.policy.half_open_calls:
                raise self._reject(now, self._since + self.policy.half_open_max_wait - now)
            self._trials_admitted += 1
            if self._first_trial_at is None:
                self._first_trial_at = now
            trial = True
        task = trio.lowlevel.current_task()
        self._calls.setdefault(task, []).append(_Call(now, self._generation, trial))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = trio.lowlevel.current_task()
        stack = self._calls[task]
        call = stack.pop()
        if not stack:
            del self._calls[task]
        now = trio.current_time()
        self._tick(now)
        if call.generation != self._generation:
            return  # admitted under another state: its outcome says nothing about this one
        if exc is not None and not self._is_failure(exc):
            if call.trial:
                self._trials_admitted -= 1  # ignored outcome (e.g. cancelled): free the slot
            return
        failed = exc is not None
        slow = now - call.started >= self.policy.slow_call_duration
        if self._state is State.CLOSED:
            self._window.add(now, failed, slow)
            reason = self._window.tripped(self.policy.minimum_calls)
            if reason:
                self._move(State.OPEN, reason, now)
        elif self._state is State.HALF_OPEN and call.trial:
            self._trials.add(now, failed, slow)
            if len(self._trials) >= self.policy.half_open_calls:
                reason = self._trials.tripped(self.policy.half_open_calls)
                if reason:
                    self._move(State.OPEN, f"trials: {reason}", now)
                else:
                    self._move(State.CLOSED, "trials succeeded", now)
