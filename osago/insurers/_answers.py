"""Reading what an insurer answers into typed values, before anything else touches it.

An insurer is outside our control: every field is checked here, at the boundary, so a
malformed answer is one insurer's ``failed`` outcome (InsurerRejected), never an exception
that escapes a worker, a value the database refuses, or a time in the wrong unit.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

__all__ = [
    "AnswerError",
    "clean_breakdown",
    "read_correlation_id",
    "read_message",
    "read_number",
    "read_remote_id",
    "read_time",
]

# ready_at is Unix seconds: a value outside 2000..2100 is in another unit (ms) or garbage.
_EARLIEST, _LATEST = 946_684_800.0, 4_102_444_800.0
_MAX_TEXT = 500  # characters of an insurer's message kept
_MAX_BREAKDOWN = 50  # fields of a breakdown kept


class AnswerError(ValueError):
    """An answer that breaks the protocol; the message says which field and why."""


def read_number(value: Any, field: str, *, positive: bool = False) -> float:
    """A finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnswerError(f"{field} must be a number")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise AnswerError(f"{field} must be a finite{' positive' if positive else ''} number")
    return number


def read_time(value: Any, field: str) -> float | None:
    """Unix seconds, or None when absent."""
    if value is None:
        return None
    seconds = read_number(value, field)
    if not _EARLIEST <= seconds <= _LATEST:
        raise AnswerError(f"{field} {seconds!r} is not Unix seconds")
    return seconds


def read_correlation_id(value: Any) -> UUID:
    if not isinstance(value, str):
        raise AnswerError("correlation_id must be a string")
    try:
        return UUID(value)
    except ValueError:
        raise AnswerError("correlation_id is not a UUID") from None


def read_remote_id(data: Any) -> str:
    """The insurer's id of our calculation, from a submit's answer."""
    value = data.get("id") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AnswerError("submit answer has no id")
    text = str(value)
    if not 0 < len(text) <= 200 or not text.isprintable():
        raise AnswerError("submit answer's id is empty, too long or not printable")
    return text


def read_message(value: Any) -> str | None:
    """A text for the user; anything but a string is dropped (the offer stands)."""
    if not isinstance(value, str):
        return None
    return "".join(c for c in value if c.isprintable())[:_MAX_TEXT] or None


def clean_breakdown(value: Any) -> dict[str, Any] | None:
    """The coefficient breakdown, keeping only short names with finite numbers or short
    texts (a NaN would make the stored JSON invalid); anything else is dropped."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key, item in list(value.items())[:_MAX_BREAKDOWN]:
        if not isinstance(key, str) or len(key) > 40:
            continue
        if (
            isinstance(item, bool)
            or item is None
            or (isinstance(item, int | float) and math.isfinite(item))
        ):
            out[key] = item
        elif isinstance(item, str):
            out[key] = item[:100]
    return out
