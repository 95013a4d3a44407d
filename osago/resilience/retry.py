"""Retries in the shape of stamina, measured on Trio's clock so MockClock drives them::

    async for attempt in retrying(on=InsurerUnavailable, policy=RetryPolicy(attempts=4)):
        with attempt:
            quote = attempt.check(await client.poll(...))

``on=`` is mandatory: exception types, or a predicate on the exception. ``on_result=`` is a
predicate on results; ``attempt.check(value)`` raises :class:`ResultRejected` (retryable) when
it holds. After the last attempt the last error propagates unchanged.

Backoff after failed attempt ``n`` (1-based), "full jitter"::

    delay(n) = uniform(0, min(max_delay, initial * multiplier ** (n - 1)))

raised to the error's ``retry_after`` hint when it has one. A retry that would sleep past the
enclosing deadline is not made: we give up at once with the last error. A retry also needs
a token from the insurer's :class:`RetryBudget`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar

import trio

from osago.errors import ResultRejected
from osago.resilience.budget import RetryBudget
from osago.resilience.events import Hook, RetryGaveUp, RetryScheduled, emit

__all__ = ["Attempt", "RetryPolicy", "backoff", "retrying"]

T = TypeVar("T")
On = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class _Uniform(Protocol):
    def uniform(self, a: float, b: float, /) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts and how long between them (see the module's formula)."""

    attempts: int = 3
    initial: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 2.0


def backoff(policy: RetryPolicy, attempt: int, rng: _Uniform) -> float:
    """The full-jitter delay after failed attempt ``attempt`` (1-based)."""
    ceiling = min(policy.max_delay, policy.initial * policy.multiplier ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


class Attempt:
    """One try: use as ``with attempt:``; retryable errors are caught and recorded."""

    def __init__(
        self,
        number: int,
        retryable: Callable[[BaseException], bool],
        on_result: Callable[[object], bool] | None,
        name: str,
    ) -> None:
        self.number = number
        self.error: BaseException | None = None
        self._retryable = retryable
        self._on_result = on_result
        self._name = name

    def check(self, value: T) -> T:
        """Return ``value``, or raise ResultRejected if the result predicate refuses it."""
        if self._on_result is not None and self._on_result(value):
            raise ResultRejected(self._name, value)
        return value

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and (isinstance(exc, ResultRejected) or self._retryable(exc)):
            self.error = exc
            return True
        return False


def _predicate(on: On) -> Callable[[BaseException], bool]:
    if isinstance(on, type | tuple):
        types = on
        return lambda exc: isinstance(exc, types)
    return on


class _Retrying:
    """The async iterator behind :func:`retrying`.

    A class, not an async generator: when a non-retryable error escapes the loop there is no
    suspended generator left for the garbage collector to finalise.
    """

    def __init__(
        self,
        retryable: Callable[[BaseException], bool],
        policy: RetryPolicy,
        on_result: Callable[[object], bool] | None,
        budget: RetryBudget | None,
        hooks: Sequence[Hook],
        name: str,
        rng: _Uniform,
    ) -> None:
        self._retryable = retryable
        self._policy = policy
        self._on_result = on_result
        self._budget = budget
        self._hooks = hooks
        self._name = name
        self._rng = rng
        self._attempt: Attempt | None = None

    def __aiter__(self) -> _Retrying:
        return self

    def _next(self, number: int) -> Attempt:
        self._attempt = Attempt(number, self._retryable, self._on_result, self._name)
        return self._attempt

    async def __anext__(self) -> Attempt:
        await trio.lowlevel.checkpoint_if_cancelled()
        previous = self._attempt
        if previous is None:
            if self._budget is not None:
                self._budget.record_call()
            return self._next(1)
        error = previous.error
        if error is None:
            raise StopAsyncIteration
        number, policy = previous.number, self._policy
        reason = None
        delay = 0.0
        if number >= policy.attempts:
            reason = "attempts"
        else:
            delay = backoff(policy, number, self._rng)
            hint = getattr(error, "retry_after", None)
            if isinstance(hint, int | float) and hint > delay:
                delay = float(hint)
            if trio.current_time() + delay >= trio.current_effective_deadline():
                reason = "deadline"
            elif self._budget is not None and not self._budget.try_spend():
                reason = "budget"
        now = trio.current_time()
        if reason is not None:
            emit(self._hooks, RetryGaveUp(self._name, now, number, reason, repr(error)))
            # Raised from here, its traceback holds this frame and the caller's: were they to
            # hold it too (the attempt's ``error``, ``error``), they would wait, with every
            # frame of the failed call, for the collector's full collection.
            previous.error = None
            self._attempt = None
            del previous
            try:
                raise error
            finally:
                del error
        emit(self._hooks, RetryScheduled(self._name, now, number, delay, repr(error)))
        await trio.sleep(delay)
        return self._next(number + 1)


def retrying(
    *,
    on: On,
    policy: RetryPolicy = RetryPolicy(),
    on_result: Callable[[object], bool] | None = None,
    budget: RetryBudget | None = None,
    hooks: Sequence[Hook] = (),
    name: str = "",
    rng: _Uniform | None = None,
) -> AsyncIterator[Attempt]:
    """Attempts until one succeeds; the last error propagates when giving up."""
    # The random module's shared generator: seeding one per call costs more than the loop.
    return _Retrying(_predicate(on), policy, on_result, budget, hooks, name, rng or random)
