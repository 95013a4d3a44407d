"""The events users receive, built in one place so the store and its twin agree byte for byte.

Every event carries ``seq``, its order within its calculation; (calculation_id, seq) is its
identity, which lets the notifier drop the duplicates that at-least-once delivery brings.

On the results topic, one message carries one event or several, one per line (NDJSON:
:func:`pack`, :func:`unpack`). An event's compact JSON has no raw line break (JSON escapes
it inside strings), so one event packs to itself: a message of one event is what it always
was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from osago.models import Outcome, OutcomeKind, answer_fields, iso

__all__ = [
    "PACKED_HEADERS",
    "completed_event",
    "encode_event",
    "event_headers",
    "insurer_event",
    "no_offer_event",
    "offer_event",
    "pack",
    "unpack",
]


def _header(kind: str, calculation_id: UUID, user_id: str, seq: int) -> dict[str, Any]:
    """What every event starts with: its type, whose calculation it is, and its order."""
    return {"type": kind, "calculation_id": str(calculation_id), "user_id": user_id, "seq": seq}


def offer_event(
    calculation_id: UUID, user_id: str, seq: int, insurer: str, insurer_name: str, outcome: Outcome
) -> dict[str, Any]:
    """The event that shows one insurer's offer to the user."""
    return {
        **_header("offer", calculation_id, user_id, seq),
        "insurer": insurer,
        "insurer_name": insurer_name,
        **answer_fields(outcome),
    }


def no_offer_event(
    calculation_id: UUID, user_id: str, seq: int, insurer: str, insurer_name: str, outcome: Outcome
) -> dict[str, Any]:
    """An insurer that will not make an offer: refused, unavailable or failed, and why."""
    return {
        **_header("no_offer", calculation_id, user_id, seq),
        "insurer": insurer,
        "insurer_name": insurer_name,
        "outcome": outcome.kind.value,
        "message": outcome.message,
        "received_at": iso(outcome.received_at),
    }


def insurer_event(
    calculation_id: UUID, user_id: str, seq: int, insurer: str, insurer_name: str, outcome: Outcome
) -> dict[str, Any]:
    """The event for one insurer's outcome: an offer, or why there is none."""
    build = offer_event if outcome.kind is OutcomeKind.OFFER else no_offer_event
    return build(calculation_id, user_id, seq, insurer, insurer_name, outcome)


def completed_event(
    calculation_id: UUID,
    user_id: str,
    seq: int,
    *,
    offers: int,
    stub: dict[str, Any],
    completed_at: float,
    deadline_at: float,
) -> dict[str, Any]:
    """The last event of a calculation; carries the stub when no offer was delivered."""
    return {
        **_header("completed", calculation_id, user_id, seq),
        "offers": offers,
        "stub": None if offers else stub,
        "completed_at": iso(completed_at),
        "deadline_at": iso(deadline_at),
    }


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def event_headers(event: dict[str, Any]) -> dict[str, str]:
    """Broker headers that let a consumer route without parsing the body."""
    return {
        "user-id": event["user_id"],
        "calculation-id": event["calculation_id"],
        "event-type": event["type"],
        "content-type": "application/json",
    }


# A packed message's headers: its events' own (event_headers) differ from line to line.
PACKED_HEADERS = {"content-type": "application/x-ndjson"}


def pack(bodies: Sequence[bytes]) -> bytes:
    """Several encoded events as the body of one topic message, one per line."""
    return b"\n".join(bodies)


def unpack(body: bytes) -> list[bytes]:
    """The events of one topic message (a line that is no event is the reader's to refuse)."""
    return [line for line in body.split(b"\n") if line]
