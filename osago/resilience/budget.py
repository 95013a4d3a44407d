"""A retry budget: retries may be at most ``ratio`` of recent calls (plus a small floor).

Why: per-call retry limits multiply load on an insurer that is already failing (3 attempts
= 3x traffic). A budget over a sliding window caps the extra load at ``ratio`` (Finagle,
gRPC; long asked for in resilience4j and Polly). Measured on Trio's clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio

__all__ = ["BudgetPolicy", "RetryBudget"]


@dataclass(frozen=True)
class BudgetPolicy:
    """``ratio`` retries per call over the last ``window`` seconds, at least ``min_retries``."""

    ratio: float = 0.2
    window: float = 10.0
    min_retries: int = 10


class RetryBudget:
    """Shared by every call to one insurer."""

    def __init__(self, policy: BudgetPolicy = BudgetPolicy()) -> None:
        self.policy = policy
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.window
        for q in (self._calls, self._retries):
            while q and q[0] <= horizon:
                q.popleft()

    def record_call(self) -> None:
        """A first attempt started."""
        now = trio.current_time()
        self._trim(now)
        self._calls.append(now)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        now = trio.current_time()
        self._trim(now)
        allowed = max(self.policy.min_retries, int(self.policy.ratio * len(self._calls)))
        if len(self._retries) >= allowed:
            return False
        self._retries.append(now)
        return True

    @property
    def retries_in_window(self) -> int:
        self._trim(trio.current_time())
        return len(self._retries)
