"""The resilience primitives' hook that counts what they did (``osago_resilience_events``)."""

from __future__ import annotations

import re

from osago.metrics._families import Metrics
from osago.resilience import Hook, ResilienceEvent

__all__ = ["metrics_hook"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def metrics_hook(metrics: Metrics) -> Hook:
    """A hook counting each event by insurer and kind (``retry_scheduled``, ``call_rejected``,
    ``breaker_transition``, ...); beside the log hook, never instead of it."""
    names: dict[type[ResilienceEvent], str] = {}

    def hook(event: ResilienceEvent) -> None:
        kind = names.get(type(event))
        if kind is None:
            kind = names[type(event)] = _snake(type(event).__name__)
        metrics.resilience.labels(event.name, kind).inc()

    return hook
