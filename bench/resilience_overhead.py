"""Per-call overhead of our composed primitives (no I/O) next to tenacity + a plain breaker.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/resilience_overhead.py

Both sides do the same work around an async no-op call: a retry loop (here never needed),
a circuit breaker check and record, and a per-attempt timeout scope. Ours adds the bulkhead
and the retry budget, as the insurer client composes them. Prints microseconds per call and
the ratio, with the bare call for reference. Runs in one process, interleaved, best of 5.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import tenacity
import trio

from osago.errors import InsurerUnavailable
from osago.resilience import (
    BreakerPolicy,
    Bulkhead,
    CircuitBreaker,
    RetryBudget,
    RetryPolicy,
    attempt_timeout,
    retrying,
)

N = 20_000


async def work() -> int:
    await trio.lowlevel.checkpoint()
    return 1


class PlainBreaker:
    """A minimal consecutive-failures breaker, as people write next to tenacity."""

    def __init__(self, threshold: int = 5, reset: float = 5.0) -> None:
        self.failures = 0
        self.opened_at: float | None = None
        self.threshold = threshold
        self.reset = reset

    async def call(self, fn: Callable[[], Awaitable[int]]) -> int:
        if self.opened_at is not None:
            if trio.current_time() - self.opened_at < self.reset:
                raise RuntimeError("open")
            self.opened_at = None
        try:
            result = await fn()
        except Exception:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = trio.current_time()
            raise
        self.failures = 0
        return result


async def bare() -> None:
    for _ in range(N):
        await work()


async def ours() -> None:
    breaker = CircuitBreaker("x", BreakerPolicy())
    bulkhead = Bulkhead("x")
    budget = RetryBudget()
    policy = RetryPolicy(attempts=4)
    for _ in range(N):
        async for attempt in retrying(on=InsurerUnavailable, policy=policy, budget=budget):
            with attempt:
                async with breaker, bulkhead:
                    with attempt_timeout("x", 5.0):
                        await work()


async def theirs() -> None:
    breaker = PlainBreaker()
    retry = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=1.0),
        retry=tenacity.retry_if_exception_type(InsurerUnavailable),
        sleep=trio.sleep,
        reraise=True,
    )

    async def guarded() -> int:
        with trio.fail_after(5.0):
            return await breaker.call(work)

    for _ in range(N):
        await retry(guarded)


def timed(fn: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    trio.run(fn)
    return (time.perf_counter() - start) / N * 1e6


def main() -> None:
    results: dict[str, list[float]] = {"bare call": [], "osago": [], "tenacity+plain": []}
    for _ in range(5):
        results["bare call"].append(timed(bare))
        results["osago"].append(timed(ours))
        results["tenacity+plain"].append(timed(theirs))
    best = {k: min(v) for k, v in results.items()}
    for name, us in best.items():
        print(f"{name:<16} {us:7.2f} us/call")
    base = best["bare call"]
    ours_over = best["osago"] - base
    theirs_over = best["tenacity+plain"] - base
    print(
        f"overhead: osago {ours_over:.2f} us, tenacity+plain breaker {theirs_over:.2f} us, "
        f"ratio osago/tenacity {ours_over / theirs_over:.2f}"
    )


if __name__ == "__main__":
    main()
