"""Carrying out lifecycle plans in SQL: read a calculation's state, apply a :class:`Plan`.

asyncio-side helpers for :mod:`osago.storage.postgres`; each runs inside the caller's
transaction (one bridge crossing), with the calculation row already locked. The rules
live in :mod:`osago.lifecycle`; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from osago.lifecycle import CalcState, ExchangeState, Plan
from osago.models import OutboxMessage, OutcomeKind

__all__ = ["CALC_COLUMNS", "OUTBOX_COLUMNS", "carry_out", "load_states", "messages"]

Conn = Any  # asyncpg.Connection (untyped library)
OUTBOX_COLUMNS = "id, destination, body, headers"
# What a CalcState is read from; select these (FOR UPDATE) and hand the rows to load_states.
CALC_COLUMNS = "id, user_id, stub, deadline_at, closes_at, completed_at, closed_at, event_seq"


def messages(rows: Sequence[Any]) -> list[OutboxMessage]:
    """Outbox rows as messages, in id order."""
    msgs = [OutboxMessage(r["id"], r["destination"], bytes(r["body"]), r["headers"]) for r in rows]
    return sorted(msgs, key=lambda m: m.id)


async def load_states(conn: Conn, calcs: Sequence[Any]) -> list[CalcState]:
    """The states of locked ``calcs`` (rows of CALC_COLUMNS), with their exchanges."""
    if not calcs:
        return []
    rows = await conn.fetch(
        "SELECT calculation_id, correlation_id, insurer, insurer_name, outcome FROM exchanges"
        " WHERE calculation_id = ANY($1::uuid[]) ORDER BY insurer",
        [c["id"] for c in calcs],
    )
    by_calc: dict[UUID, list[ExchangeState]] = {}
    for r in rows:
        by_calc.setdefault(r["calculation_id"], []).append(
            ExchangeState(
                r["correlation_id"],
                r["insurer"],
                r["insurer_name"],
                OutcomeKind(r["outcome"]) if r["outcome"] else None,
            )
        )
    return [
        CalcState(
            c["id"],
            c["user_id"],
            c["stub"],
            c["deadline_at"],
            max(c["closes_at"], c["deadline_at"]),
            c["completed_at"],
            c["closed_at"],
            c["event_seq"],
            tuple(by_calc.get(c["id"], ())),
        )
        for c in calcs
    ]


async def carry_out(
    conn: Conn,
    state: CalcState,
    plan: Plan,
    *,
    topic: str,
    now: float,
    lease: float,
) -> list[OutboxMessage]:
    """Apply ``plan`` to ``state``'s rows; return the events the caller publishes."""
    if plan.empty:
        return []
    o = plan.settle
    if o is not None and plan.settled is not None:
        await conn.execute(
            "UPDATE exchanges SET outcome = $2, premium = $3, message = $4, ready_at = $5,"
            " received_at = $6, detail = $7 WHERE correlation_id = $1",
            plan.settled,
            o.kind.value,
            o.premium,
            o.message,
            o.ready_at,
            o.received_at,
            o.extras(),
        )
    if plan.timed_out:
        await conn.execute(
            "UPDATE exchanges SET outcome = 'timed_out', received_at = $2"
            " WHERE correlation_id = ANY($1::uuid[])",
            list(plan.timed_out),
            now,
        )
    await conn.execute(
        "UPDATE calculations SET event_seq = $2,"
        " completed_at = CASE WHEN $3 THEN $5 ELSE completed_at END,"
        " closed_at = CASE WHEN $4 THEN $5 ELSE closed_at END WHERE id = $1",
        state.id,
        plan.seq,
        plan.complete,
        plan.close,
        now,
    )
    added = [
        await conn.fetchrow(
            "INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
            f" leased_until) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {OUTBOX_COLUMNS}",
            topic,
            e.body,
            dict(e.headers),
            state.id,
            now,
            now + lease,
        )
        for e in plan.events
    ]
    if not plan.flush:
        return messages(added)
    # A completion: every unsent event of the calculation, in order, `completed` last.
    rows = await conn.fetch(
        f"UPDATE outbox SET leased_until = $3 WHERE calculation_id = $1"
        f" AND sent_at IS NULL AND destination = $2 RETURNING {OUTBOX_COLUMNS}",
        state.id,
        topic,
        now + lease,
    )
    return messages(rows)
