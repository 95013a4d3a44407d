"""Timeout, Retry, Circuit Breaker, Bulkhead and hedging on Trio's clock (one module each)."""

from osago.resilience.breaker import BreakerPolicy, CircuitBreaker, State
from osago.resilience.budget import BudgetPolicy, RetryBudget
from osago.resilience.bulkhead import Bulkhead, BulkheadPolicy
from osago.resilience.events import Hook, ResilienceEvent, log_hook
from osago.resilience.hedge import hedged
from osago.resilience.retry import Attempt, RetryPolicy, backoff, retrying
from osago.resilience.timeouts import attempt_timeout, time_left

__all__ = [
    "Attempt",
    "BreakerPolicy",
    "BudgetPolicy",
    "Bulkhead",
    "BulkheadPolicy",
    "CircuitBreaker",
    "Hook",
    "ResilienceEvent",
    "RetryBudget",
    "RetryPolicy",
    "State",
    "attempt_timeout",
    "backoff",
    "hedged",
    "log_hook",
    "retrying",
    "time_left",
]
