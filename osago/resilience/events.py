"""Instrumentation: every primitive reports what it did as a small frozen event to hooks.

A hook is any ``Callable[[ResilienceEvent], None]``; it must not block. ``log_hook`` is the
default; metrics hooks plug in the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "AttemptTimedOut",
    "BreakerTransition",
    "BulkheadRejected",
    "CallRejected",
    "HedgeStarted",
    "Hook",
    "ResilienceEvent",
    "RetryGaveUp",
    "RetryScheduled",
    "emit",
    "log_hook",
]

log = logging.getLogger("osago.resilience")


@dataclass(frozen=True)
class ResilienceEvent:
    """Base: ``name`` is the protected thing (an insurer code), ``at`` Trio time."""

    name: str
    at: float


@dataclass(frozen=True)
class RetryScheduled(ResilienceEvent):
    """Attempt ``attempt`` failed with ``error``; the next starts after ``delay`` seconds."""

    attempt: int
    delay: float
    error: str


@dataclass(frozen=True)
class RetryGaveUp(ResilienceEvent):
    """No more attempts: ``reason`` is attempts, budget, deadline or not-retryable."""

    attempt: int
    reason: str
    error: str


@dataclass(frozen=True)
class BreakerTransition(ResilienceEvent):
    """The breaker moved from ``old`` to ``new`` state."""

    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class CallRejected(ResilienceEvent):
    """An open (or full half-open) breaker refused a call."""

    retry_after: float


@dataclass(frozen=True)
class AttemptTimedOut(ResilienceEvent):
    """One attempt exceeded ``timeout``."""

    timeout: float


@dataclass(frozen=True)
class BulkheadRejected(ResilienceEvent):
    """No slot freed up within ``waited`` seconds."""

    waited: float


@dataclass(frozen=True)
class HedgeStarted(ResilienceEvent):
    """The first call was slower than ``delay``: a second one started."""

    delay: float


Hook = Callable[[ResilienceEvent], None]


def log_hook(event: ResilienceEvent) -> None:
    """Log every event; transitions and rejections at WARNING."""
    level = logging.WARNING if isinstance(event, BreakerTransition | RetryGaveUp) else logging.INFO
    log.log(level, "%s: %s", event.name, event)


def emit(hooks: Sequence[Hook], event: ResilienceEvent) -> None:
    """Send ``event`` to every hook; a failing hook is logged, never raised."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            log.exception("resilience hook %r failed on %r", hook, event)
