"""The PostgreSQL store's plainer queries: a calculation as the api shows it, backlog, failure
reasons, timelines, retention.
Each is the body of one transaction (``PostgresStore._tx``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from osago.models import (
    CalculationView,
    ExchangeView,
    OutboxMessage,
    OutboxTrace,
    Outcome,
    Push,
    Step,
    Trail,
)
from osago.storage._pg_lifecycle import OUTBOX_COLUMNS, messages

__all__ = [
    "claim_outbox",
    "failures",
    "get_calculation",
    "next_deadline",
    "outbox_backlog",
    "outbox_of",
    "purge_closed",
    "record_failure",
    "record_pushes",
    "record_steps",
    "record_steps_text",
    "settled_among",
    "steps_text",
    "trail_of",
]

Conn = Any  # asyncpg.Connection (untyped library)


async def outbox_of(calculation_id: UUID, conn: Conn) -> list[OutboxTrace]:
    rows = await conn.fetch(
        "SELECT destination, body, headers, created_at, sent_at FROM outbox"
        " WHERE calculation_id = $1 ORDER BY id",
        calculation_id,
    )
    return [
        OutboxTrace(r["destination"], bytes(r["body"]), r["headers"], r["created_at"], r["sent_at"])
        for r in rows
    ]


async def settled_among(correlation_ids: list[UUID], conn: Conn) -> dict[UUID, bool]:
    rows = await conn.fetch(
        "SELECT e.correlation_id, e.outcome IS NOT NULL OR c.closed_at IS NOT NULL AS settled"
        " FROM exchanges e JOIN calculations c ON c.id = e.calculation_id"
        " WHERE e.correlation_id = ANY($1::uuid[])",
        correlation_ids,
    )
    return {r["correlation_id"]: r["settled"] for r in rows}


def steps_text(done: Sequence[Step]) -> str:
    """An exchange's steps as the JSON text of its ``steps`` column.

    As text, cast in SQL: asyncpg reads nested lists as a multi-dimensional array."""
    return json.dumps([list(step) for step in done])


async def record_steps(steps: Sequence[tuple[UUID, Sequence[Step]]], conn: Conn) -> None:
    await record_steps_text({c: steps_text(done) for c, done in steps}, conn)


async def record_steps_text(texts: Mapping[UUID, str], conn: Conn) -> None:
    """Each exchange's steps, already as :func:`steps_text`, by correlation id."""
    await conn.execute(
        "UPDATE exchanges AS e SET steps = s.steps::jsonb"
        " FROM unnest($1::uuid[], $2::text[]) AS s (correlation_id, steps)"
        " WHERE e.correlation_id = s.correlation_id",
        list(texts),
        list(texts.values()),
    )


async def record_pushes(pushes: Sequence[Push], conn: Conn) -> None:
    await conn.execute(
        "INSERT INTO pushes (calculation_id, seq, type, at)"
        " SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::float8[])",
        [p.calculation_id for p in pushes],
        [p.seq for p in pushes],
        [p.type for p in pushes],
        [p.at for p in pushes],
    )


async def trail_of(calculation_id: UUID, conn: Conn) -> Trail:
    steps = await conn.fetch(
        "SELECT insurer, steps FROM exchanges WHERE calculation_id = $1 AND steps IS NOT NULL",
        calculation_id,
    )
    pushes = await conn.fetch(
        "SELECT seq, type, at FROM pushes WHERE calculation_id = $1 ORDER BY at, seq",
        calculation_id,
    )
    return Trail(
        {r["insurer"]: [(float(t), str(what)) for t, what in r["steps"]] for r in steps},
        [Push(calculation_id, r["seq"], r["type"], r["at"]) for r in pushes],
    )


async def claim_outbox(now: float, lease: float, limit: int, conn: Conn) -> list[OutboxMessage]:
    # SKIP LOCKED: concurrent relays each take different rows instead of queueing on locks;
    # the lease (not the row lock) is what keeps a row claimed while it is being published.
    rows = await conn.fetch(
        f"UPDATE outbox SET leased_until = $1 + $2 WHERE id IN ("
        f" SELECT id FROM outbox WHERE sent_at IS NULL"
        f" AND (leased_until IS NULL OR leased_until < $1)"
        f" ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {OUTBOX_COLUMNS}",
        now,
        lease,
        limit,
    )
    return messages(rows)


async def next_deadline(conn: Conn) -> float | None:
    # LEAST ignores NULLs: the next completion or closing, whichever comes first. Two
    # subqueries, because each min() is then read off its partial index (open rows
    # only); min() ... FILTER over the table scanned every calculation ever made.
    value: float | None = await conn.fetchval(
        "SELECT least("
        "(SELECT min(deadline_at) FROM calculations WHERE completed_at IS NULL),"
        " (SELECT min(closes_at) FROM calculations WHERE closed_at IS NULL))"
    )
    return value


async def outbox_backlog(conn: Conn) -> tuple[int, float | None]:
    row = await conn.fetchrow(  # both off the partial index of unsent rows
        "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL"
    )
    return int(row["n"]), row["oldest"]


async def record_failure(message_id: str, reason: str, now: float, conn: Conn) -> None:
    await conn.execute(
        "INSERT INTO job_failures (message_id, reason, at) VALUES ($1, $2, $3)"
        " ON CONFLICT (message_id) DO UPDATE SET reason = $2, at = $3",
        message_id,
        reason,
        now,
    )


async def failures(message_ids: list[str], conn: Conn) -> dict[str, tuple[str, float]]:
    rows = await conn.fetch(
        "SELECT message_id, reason, at FROM job_failures WHERE message_id = ANY($1)",
        message_ids,
    )
    return {r["message_id"]: (r["reason"], r["at"]) for r in rows}


async def purge_closed(before: float, limit: int, conn: Conn) -> int:
    # SKIP LOCKED: several workers sweep at once without queueing on each other. Exchanges
    # go by ON DELETE CASCADE; the outbox has no foreign key (rows are written and sent at a
    # rate no FK check should slow), so its sent rows go here.
    ids = await conn.fetch(
        "DELETE FROM calculations WHERE id IN (SELECT id FROM calculations"
        " WHERE closed_at < $1 ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING id",
        before,
        limit,
    )
    if ids:
        gone = [r["id"] for r in ids]
        await conn.execute(
            "DELETE FROM outbox WHERE calculation_id = ANY($1::uuid[]) AND sent_at IS NOT NULL",
            gone,
        )
        await conn.execute("DELETE FROM pushes WHERE calculation_id = ANY($1::uuid[])", gone)
    await conn.execute("DELETE FROM job_failures WHERE at < $1", before)
    return len(ids)


async def get_calculation(calculation_id: UUID, conn: Conn) -> CalculationView | None:
    c = await conn.fetchrow("SELECT * FROM calculations WHERE id = $1", calculation_id)
    if c is None:
        return None
    xs = await conn.fetch(
        "SELECT * FROM exchanges WHERE calculation_id = $1 ORDER BY insurer", calculation_id
    )
    views = tuple(
        ExchangeView(
            x["insurer"],
            x["insurer_name"],
            Outcome.restore(
                x["outcome"],
                x["received_at"],
                x["premium"],
                x["message"],
                x["ready_at"],
                x["detail"],
            )
            if x["outcome"]
            else None,
        )
        for x in xs
    )
    return CalculationView(
        c["id"],
        c["user_id"],
        c["request"],
        c["created_at"],
        c["deadline_at"],
        c["completed_at"],
        c["stub"],
        views,
        c["closes_at"],
        c["closed_at"],
        c["event_seq"],
    )
