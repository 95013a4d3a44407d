"""Every call to an insurer, protected by our primitives composed in ONE documented order::

    overall deadline (the worker's cancel scope at the calculation's deadline)
      └ retry          idempotent calls only; full-jitter backoff; per-insurer retry budget;
        │              never sleeps past the deadline; CircuitOpen is not retried
        └ breaker      per insurer; rejects without calling while open
          └ bulkhead   per insurer; at most N concurrent calls
            └ attempt timeout  (submit_timeout / poll_timeout, inside the deadline)
              └ hedge  polls only (not long polls), when hedge_delay is set; the second
                │      call takes its own bulkhead slot and a retry from the budget
                └ HTTP call

Why breaker outside bulkhead: a rejected call should not even queue for a slot. Why retry
outside breaker: each attempt is seen (and counted) by the breaker, and an open breaker
stops the retries at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from uuid import UUID

from osago.errors import AttemptTimeout, BulkheadFull, InsurerUnavailable, ResultRejected
from osago.insurers.client import InsurerClient, Pending, Quote
from osago.insurers.config import FAILURE_KINDS, InsurerConfig
from osago.insurers.schedule import AnswerTimes
from osago.models import RawJSON
from osago.resilience import (
    Bulkhead,
    CircuitBreaker,
    Hook,
    RetryBudget,
    RetryPolicy,
    attempt_timeout,
    hedged,
    retrying,
)

__all__ = ["GuardedInsurer", "guard_insurers"]

T = TypeVar("T")

# Transient: worth another attempt. CircuitOpen is deliberately absent.
_RETRYABLE = (InsurerUnavailable, AttemptTimeout, BulkheadFull, ResultRejected)


class GuardedInsurer:
    """One insurer behind its breaker, bulkhead and retry budget (shared per process)."""

    def __init__(self, config: InsurerConfig, client: InsurerClient, hooks: Sequence[Hook]) -> None:
        self.config = config
        self._client = client
        self._hooks = hooks
        counted = tuple(t for kind in config.failures for t in FAILURE_KINDS[kind])
        self.breaker = CircuitBreaker(
            config.code,
            config.breaker,
            is_failure=lambda exc: isinstance(exc, counted),
            hooks=hooks,
        )
        self.bulkhead = Bulkhead(config.code, config.bulkhead, hooks)
        self.budget = RetryBudget(config.budget)
        self.answers = AnswerTimes(config.schedule)  # when its answers become ready

    async def _call(self, fn: Callable[[], Awaitable[T]], *, operation: str, idempotent: bool) -> T:
        c = self.config
        # Timeouts are configuration; this is the one layer that turns them into scopes.
        seconds = c.submit_timeout if operation == "submit" else c.poll_attempt_timeout
        hedge = c.poll_hedge if operation == "poll" else None  # never hedge a submit
        policy = c.retry if idempotent else RetryPolicy(attempts=1)
        result: T
        async for attempt in retrying(
            on=_RETRYABLE, policy=policy, budget=self.budget, hooks=self._hooks, name=c.code
        ):
            with attempt:
                async with self.breaker, self.bulkhead:
                    with attempt_timeout(c.code, seconds, self._hooks):
                        if hedge is not None:
                            result = await hedged(
                                c.code,
                                self._own_slot_after_first(fn),
                                delay=hedge,
                                allowed=self.budget.try_spend,
                                hooks=self._hooks,
                            )
                        else:
                            result = await fn()
        return result

    def _own_slot_after_first(self, fn: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``fn`` for :func:`hedged`: the first call runs in the slot already held, the hedge
        takes a slot of its own, so the bulkhead bounds calls in flight, hedges included."""
        calls = 0

        async def call() -> T:
            nonlocal calls
            calls += 1
            if calls == 1:
                return await fn()
            async with self.bulkhead:
                return await fn()

        return call

    async def submit(self, correlation_id: UUID, request: RawJSON) -> str:
        """Create the insurer's calculation. Retried: the correlation id is its idempotency
        key, so a repeated submit returns the same calculation instead of a second one."""
        return await self._call(
            lambda: self._client.submit(self.config, correlation_id, request),
            operation="submit",
            idempotent=True,
        )

    async def poll(self, remote_id: str) -> Quote | Pending:
        """Poll once (with retries, optionally hedged): the answer, or Pending."""
        return await self._call(
            lambda: self._client.poll(self.config, remote_id), operation="poll", idempotent=True
        )


def guard_insurers(
    configs: Sequence[InsurerConfig], client: InsurerClient, hooks: Sequence[Hook]
) -> dict[str, GuardedInsurer]:
    """A guard per insurer code."""
    return {c.code: GuardedInsurer(c, client, hooks) for c in configs}
