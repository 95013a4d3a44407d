"""The calculation lifecycle in SQL: events into the outbox, completing, closing.

asyncio-side helpers for :mod:`osago.storage.postgres`; each runs inside the caller's
transaction (one bridge crossing), with the calculation row already locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from osago.events import completed_event, encode_event, event_headers
from osago.models import OutboxMessage

__all__ = ["OUTBOX_COLUMNS", "add_event", "close", "complete", "messages"]

Conn = Any  # asyncpg.Connection (untyped library)
OUTBOX_COLUMNS = "id, destination, body, headers"


def messages(rows: Sequence[Any]) -> list[OutboxMessage]:
    """Outbox rows as messages, in id order."""
    msgs = [OutboxMessage(r["id"], r["destination"], bytes(r["body"]), r["headers"]) for r in rows]
    return sorted(msgs, key=lambda m: m.id)


async def add_event(
    conn: Conn, event: dict[str, Any], topic: str, *, now: float, lease: float
) -> OutboxMessage:
    row = await conn.fetchrow(
        "INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
        f" leased_until) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {OUTBOX_COLUMNS}",
        topic,
        encode_event(event),
        event_headers(event),
        UUID(event["calculation_id"]),
        now,
        now + lease,
    )
    return messages([row])[0]


async def complete(
    conn: Conn, calc: Any, *, topic: str, now: float, lease: float
) -> list[OutboxMessage]:
    """Complete ``calc``; return ALL its unsent events, in order, ``completed`` last.

    Why all: an offer stored by another task may not be published yet; sending it here,
    ahead of ``completed``, means no user ever sees an offer after the end (the other
    task's copy is a duplicate the notifier drops).
    """
    offers = await conn.fetchval(
        "SELECT count(*) FROM exchanges WHERE calculation_id = $1 AND outcome = 'offer'",
        calc["id"],
    )
    seq = await conn.fetchval(
        "UPDATE calculations SET completed_at = $2, event_seq = event_seq + 1"
        " WHERE id = $1 RETURNING event_seq",
        calc["id"],
        now,
    )
    event = completed_event(
        calc["id"], calc["user_id"], seq, offers=offers, stub=calc["stub"], completed_at=now
    )
    await add_event(conn, event, topic, now=now, lease=lease)
    rows = await conn.fetch(
        f"UPDATE outbox SET leased_until = $3 WHERE calculation_id = $1"
        f" AND sent_at IS NULL AND destination = $2 RETURNING {OUTBOX_COLUMNS}",
        calc["id"],
        topic,
        now + lease,
    )
    return messages(rows)


async def close(conn: Conn, calculation_id: UUID, now: float) -> None:
    """The late window is over: pending exchanges time out, polling stops."""
    await conn.execute(
        "UPDATE exchanges SET outcome = 'timed_out', received_at = $2"
        " WHERE calculation_id = $1 AND outcome IS NULL",
        calculation_id,
        now,
    )
    await conn.execute("UPDATE calculations SET closed_at = $2 WHERE id = $1", calculation_id, now)
