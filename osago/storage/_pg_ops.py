"""The PostgreSQL store's operations queries: backlog, failure reasons, retention. Each is
the body of one transaction (``PostgresStore._tx``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from osago.models import OutboxTrace

__all__ = ["failures", "outbox_backlog", "outbox_of", "purge_closed", "record_failure"]

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
        await conn.execute(
            "DELETE FROM outbox WHERE calculation_id = ANY($1::uuid[]) AND sent_at IS NOT NULL",
            [r["id"] for r in ids],
        )
    await conn.execute("DELETE FROM job_failures WHERE at < $1", before)
    return len(ids)
