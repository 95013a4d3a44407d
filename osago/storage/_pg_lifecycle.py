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


# Every change a batch of plans makes, as one statement over arrays. Data-modifying CTEs all
# run, on one snapshot: `fl` (a completion's unsent events) cannot see the rows `ins` adds,
# so the events to publish are both. No row is changed twice: a batch either settles
# answers (on_answer) or times exchanges out (on_due), never both to one exchange.
_CARRY_OUT = (
    "WITH st AS (UPDATE exchanges AS e SET outcome = s.outcome, premium = s.premium,"
    " message = s.message, ready_at = s.ready_at, received_at = s.received_at,"
    " detail = s.detail FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[],"
    " $5::float8[], $6::float8[], $7::jsonb[])"
    " AS s (cid, outcome, premium, message, ready_at, received_at, detail)"
    " WHERE e.correlation_id = s.cid),"
    " tm AS (UPDATE exchanges SET outcome = 'timed_out', received_at = $8"
    " WHERE correlation_id = ANY($9::uuid[])),"
    " cu AS (UPDATE calculations AS c SET event_seq = v.seq,"
    " completed_at = CASE WHEN v.complete THEN $8 ELSE c.completed_at END,"
    " closed_at = CASE WHEN v.close THEN $8 ELSE c.closed_at END"
    " FROM unnest($10::uuid[], $11::int[], $12::bool[], $13::bool[])"
    " AS v (id, seq, complete, close) WHERE c.id = v.id),"
    # ORDER BY the arrays' order: ids (the publishing order) follow the plans' events.
    " ins AS (INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
    " leased_until) SELECT $14, e.body, e.headers, e.calc, $8, $15"
    " FROM unnest($16::bytea[], $17::jsonb[], $18::uuid[]) WITH ORDINALITY"
    f" AS e (body, headers, calc, n) ORDER BY e.n RETURNING calculation_id, {OUTBOX_COLUMNS}),"
    " fl AS (UPDATE outbox SET leased_until = $15 WHERE calculation_id = ANY($19::uuid[])"
    f" AND sent_at IS NULL AND destination = $14 RETURNING calculation_id, {OUTBOX_COLUMNS})"
    " SELECT * FROM ins UNION ALL SELECT * FROM fl"
)


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

    Why one statement for the whole batch: a worker settles the answers that arrived
    together in one transaction, and each statement is a round trip (a socket write that
    wakes the backend, the costliest thing a worker did). A calculation with several plans
    here (two of its insurers settled together) gets its last seq and every flag any plan
    set; a completion publishes every unsent event of its calculation, `completed` last.
    """
    plans = [(state, plan) for state, plan in plans if not plan.empty]
    if not plans:
        return []
    settles = [(p.settled, o) for _, p in plans if (o := p.settle) is not None and p.settled]
    calcs: dict[UUID, tuple[int, bool, bool]] = {}
    for state, p in plans:
        _, complete, close = calcs.get(state.id, (0, False, False))
        calcs[state.id] = (p.seq, complete or p.complete, close or p.close)
    events = [(state.id, e) for state, p in plans for e in p.events]
    rows = await conn.fetch(
        _CARRY_OUT,
        [cid for cid, _ in settles],
        [o.kind.value for _, o in settles],
        [o.premium for _, o in settles],
        [o.message for _, o in settles],
        [o.ready_at for _, o in settles],
        [o.received_at for _, o in settles],
        [o.extras() for _, o in settles],
        now,
        [cid for _, p in plans for cid in p.timed_out],
        list(calcs),
        [seq for seq, _, _ in calcs.values()],
        [complete for _, complete, _ in calcs.values()],
        [close for _, _, close in calcs.values()],
        topic,
        now + lease,
        [e.body for _, e in events],
        [dict(e.headers) for _, e in events],
        [calc_id for calc_id, _ in events],
        list({state.id for state, p in plans if p.flush}),
    )
    by_calc: dict[UUID, list[Any]] = {}
    for r in rows:
        by_calc.setdefault(r["calculation_id"], []).append(r)
    return [(calc_id, messages(rows)) for calc_id, rows in by_calc.items()]
