"""Events from the results topic, as the notifier reads them: checked before anything touches
them, since the pump serves every user."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from osago.models import Push

__all__ = ["JSON_ERRORS", "Event", "note_of", "read_event", "timestamp"]


# What a JSON document from outside may raise besides ValueError: deep nesting, huge numbers.
JSON_ERRORS = (ValueError, KeyError, TypeError, RecursionError, OverflowError)


class Event(NamedTuple):
    """One readable topic event."""

    user_id: str
    calculation_id: str
    seq: int
    text: str
    type: str
    received_at: float | None  # when the worker had the insurer's answer (offers, no_offers)


def read_event(body: bytes) -> Event:
    """A topic event, checked; ValueError when it is not one.

    Checked before anything touches it: the pump serves every user, so an event that is not
    one (invalid UTF-8, deep nesting, ``"seq": 1e999``, ``"calculation_id": {}``) is dropped
    with a log line, never raised."""
    try:
        text = body.decode()
        event = json.loads(text)
        user_id, calc, seq = event["user_id"], event["calculation_id"], event["seq"]
        kind = event.get("type")
        received = event.get("received_at")
    except JSON_ERRORS as exc:
        raise ValueError(f"unreadable: {type(exc).__name__}") from exc
    if not (isinstance(user_id, str) and isinstance(calc, str)):
        raise ValueError("user_id and calculation_id must be strings")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("seq must be a whole number")
    try:
        received_at = timestamp(received) if received is not None else None
    except (ValueError, TypeError, OverflowError):
        received_at = None  # only a metric reads it
    return Event(user_id, calc, seq, text, kind if isinstance(kind, str) else "", received_at)


def timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or an ISO 8601 text; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a time")
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def note_of(e: Event) -> Push | None:
    """The push to note for a timeline once the frame is written (time filled in then)."""
    try:
        return Push(UUID(e.calculation_id), e.seq, e.type, 0.0)
    except ValueError:  # not one of our calculations: nothing to note it under
        return None
