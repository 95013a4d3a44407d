"""Carrying out lifecycle plans in SQL: read a calculation's state, apply a :class:`Plan`.

asyncio-side helpers for :mod:`osago.storage.postgres`; each runs inside the caller's
transaction (one bridge crossing), with the calculation row already locked. The rules
live in :mod:`osago.lifecycle`; nothing here decides anything.
"""

from __future__ import annotations

import json
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
    plans: Sequence[tuple[CalcState, Plan]],
    *,
    topic: str,
    now: float,
    lease: float,
) -> list[tuple[UUID, list[OutboxMessage]]]:
    """Apply ``plans`` (see :class:`osago.lifecycle.Plan`), each on its calculation's state;
    return (calculation id, its events to publish) for every calculation with any.

    Why set-wise: a worker settles the answers that arrived together in one transaction,
    and each statement here is a round trip (a socket write that wakes the backend, the
    costliest thing the worker did). So each kind of change is one statement for the whole
    batch, whatever its size: executemany pipelines its rows in a single round trip, and
    the events are one INSERT over arrays. A calculation with several plans here (two of
    its insurers settled together) gets its last seq and every flag any plan set.
    """
    plans = [(state, plan) for state, plan in plans if not plan.empty]
    if not plans:
        return []
    settles = [
        (p.settled, o.kind.value, o.premium, o.message, o.ready_at, o.received_at, o.extras())
        for _, p in plans
        if (o := p.settle) is not None and p.settled is not None
    ]
    if settles:
        await conn.executemany(
            "UPDATE exchanges SET outcome = $2, premium = $3, message = $4, ready_at = $5,"
            " received_at = $6, detail = $7 WHERE correlation_id = $1",
            settles,
        )
    if timed_out := [cid for _, p in plans for cid in p.timed_out]:
        await conn.execute(
            "UPDATE exchanges SET outcome = 'timed_out', received_at = $2"
            " WHERE correlation_id = ANY($1::uuid[])",
            timed_out,
            now,
        )
    calcs: dict[UUID, tuple[int, bool, bool]] = {}
    for state, p in plans:
        _, complete, close = calcs.get(state.id, (0, False, False))
        calcs[state.id] = (p.seq, complete or p.complete, close or p.close)
    await conn.executemany(
        "UPDATE calculations SET event_seq = $2,"
        " completed_at = CASE WHEN $3 THEN $5 ELSE completed_at END,"
        " closed_at = CASE WHEN $4 THEN $5 ELSE closed_at END WHERE id = $1",
        [(calc_id, *flags, now) for calc_id, flags in calcs.items()],
    )
    events = [(state.id, e) for state, p in plans for e in p.events]
    # ORDER BY the arrays' order: ids (the publishing order) follow the plans' events.
    added = (
        await conn.fetch(
            "INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
            " leased_until) SELECT $1, e.body, e.headers::jsonb, e.calc, $2, $3"
            " FROM unnest($4::bytea[], $5::text[], $6::uuid[]) WITH ORDINALITY"
            " AS e(body, headers, calc, n) ORDER BY e.n"
            f" RETURNING calculation_id, {OUTBOX_COLUMNS}",
            topic,
            now,
            now + lease,
            [e.body for _, e in events],
            [json.dumps(dict(e.headers)) for _, e in events],
            [calc_id for calc_id, _ in events],
        )
        if events
        else []
    )
    # A completion: every unsent event of the calculation, in order, `completed` last.
    flushed = sorted({state.id for state, p in plans if p.flush})
    if flushed:
        added = [r for r in added if r["calculation_id"] not in flushed] + await conn.fetch(
            "UPDATE outbox SET leased_until = $3 WHERE calculation_id = ANY($1::uuid[])"
            f" AND sent_at IS NULL AND destination = $2 RETURNING calculation_id, {OUTBOX_COLUMNS}",
            flushed,
            topic,
            now + lease,
        )
    by_calc: dict[UUID, list[Any]] = {}
    for r in added:
        by_calc.setdefault(r["calculation_id"], []).append(r)
    return [(calc_id, messages(rows)) for calc_id, rows in by_calc.items()]
