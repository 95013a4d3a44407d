"""Calculations completed, and how late: read off the `completed` events a process publishes
(the lifecycle's plans produce them; the keeper and the workers publish them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from osago.metrics._families import Metrics
from osago.models import OutboxMessage

__all__ = ["observe_completed"]


def observe_completed(metrics: Metrics, messages: Sequence[OutboxMessage], now: float) -> None:
    """Count each `completed` in ``messages`` (offers | stub) and its lateness at ``now``."""
    for m in messages:
        if m.headers.get("event-type") != "completed":
            continue
        try:
            event = json.loads(m.body)
            deadline = datetime.fromisoformat(event["deadline_at"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # written by an older version: counted by nobody rather than wrongly
        metrics.completed.labels("offers" if event.get("offers") else "stub").inc()
        if not event.get("offers"):
            metrics.recent_stubs.append((str(event.get("calculation_id")), now))
        metrics.lateness.observe(max(0.0, now - deadline.timestamp()))
