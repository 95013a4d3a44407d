"""Carrying out lifecycle plans in SQL: read a calculation's state, apply a :class:`Plan`.

asyncio-side helpers for :mod:`osago.storage.postgres`, run in one bridge crossing. The
rules live in :mod:`osago.lifecycle`; nothing here decides anything.

Why optimistic: a plan is carried out only on the calculation row it was planned on. Its
version is the row's ``xmin`` (the transaction that last wrote it; every plan carried out
writes the row). Settling an answer was BEGIN, a row lock, a read, the write and COMMIT:
five round trips, most of what a worker spent on PostgreSQL. Now it is one read (its own
snapshot, no lock) and one write that locks the rows still at the version read, in id
order, and changes only those; a calculation written meanwhile (another answer, the
keeper) is read and planned again. The keeper still locks first (SKIP LOCKED): its rows
cannot change under it, so its versions always hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from osago.errors import StoreError
from osago.lifecycle import CalcState, ExchangeState, Plan, on_due
from osago.models import OutboxMessage, Outcome, OutcomeKind, Step
from osago.storage._pg_ops import record_steps_text, steps_text
from osago.storage._settling import plan_answers

__all__ = [
    "CALC_COLUMNS",
    "OUTBOX_COLUMNS",
    "carry_out",
    "complete_due",
    "load_states",
    "messages",
    "read_states",
    "settle_answers",
]

Conn = Any  # asyncpg.Connection (untyped library)
OUTBOX_COLUMNS = "id, destination, body, headers"
# What a CalcState is read from; select these (FOR UPDATE) and hand the rows to load_states.
CALC_COLUMNS = (
    "id, user_id, stub, deadline_at, closes_at, completed_at, closed_at, event_seq,"
    " xmin::text AS version"
)
# A calculation's version, as read with it: what carry_out writes only if it still holds.
Versions = dict[UUID, str]
# A settle whose calculations keep changing under it (their other answers, the keeper) is
# read and planned again. A round is lost only to another writer's success, so a
# calculation of n insurers loses at most about n rounds to its own answers.
_SETTLE_ROUNDS = 30


def messages(rows: Sequence[Any]) -> list[OutboxMessage]:
    """Outbox rows as messages, in id order."""
    msgs = [OutboxMessage(r["id"], r["destination"], bytes(r["body"]), r["headers"]) for r in rows]
    return sorted(msgs, key=lambda m: m.id)


def _state(c: Any, exchanges: Sequence[ExchangeState]) -> CalcState:
    return CalcState(
        c["id"],
        c["user_id"],
        c["stub"],
        c["deadline_at"],
        max(c["closes_at"], c["deadline_at"]),
        c["completed_at"],
        c["closed_at"],
        c["event_seq"],
        tuple(exchanges),
    )


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
    return [_state(c, by_calc.get(c["id"], ())) for c in calcs]


# One snapshot, no lock: each calculation with its exchanges (in insurer order) and version.
_READ_STATES = (
    "SELECT c.id, c.user_id, c.stub, c.deadline_at, c.closes_at, c.completed_at, c.closed_at,"
    " c.event_seq, c.xmin::text AS version,"
    " array_agg(e.correlation_id ORDER BY e.insurer) AS cids,"
    " array_agg(e.insurer ORDER BY e.insurer) AS insurers,"
    " array_agg(e.insurer_name ORDER BY e.insurer) AS names,"
    " array_agg(e.outcome ORDER BY e.insurer) AS outcomes"
    " FROM calculations c JOIN exchanges e ON e.calculation_id = c.id"
    " WHERE c.id IN (SELECT calculation_id FROM exchanges WHERE correlation_id = ANY($1::uuid[]))"
    " GROUP BY c.id"
)


async def read_states(
    conn: Conn, correlation_ids: Sequence[UUID]
) -> tuple[list[CalcState], Versions]:
    """The states (and versions) of the calculations these exchanges belong to, unlocked."""
    rows = await conn.fetch(_READ_STATES, list(correlation_ids))
    states = [
        _state(
            r,
            [
                ExchangeState(cid, code, name, OutcomeKind(o) if o else None)
                for cid, code, name, o in zip(
                    r["cids"], r["insurers"], r["names"], r["outcomes"], strict=True
                )
            ],
        )
        for r in rows
    ]
    return states, {r["id"]: r["version"] for r in rows}


# Every change a batch of plans makes, as one statement over arrays. `lk` locks, in id order
# (two writers of overlapping batches cannot deadlock), the calculations still at the version
# their plans were made on; every other part changes only those. Data-modifying CTEs all
# run, on one snapshot: `fl` (a completion's unsent events) cannot see the rows `ins` adds,
# so the events to publish are both. No row is changed twice: a batch either settles
# answers (on_answer) or times exchanges out (on_due), never both to one exchange.
_CARRY_OUT = (
    "WITH lk AS MATERIALIZED (SELECT c.id FROM calculations AS c"
    " JOIN unnest($10::uuid[], $20::text[]) AS v (id, version) ON c.id = v.id"
    " WHERE c.xmin::text = v.version ORDER BY c.id FOR UPDATE OF c),"
    " st AS (UPDATE exchanges AS e SET outcome = s.outcome, premium = s.premium,"
    " message = s.message, ready_at = s.ready_at, received_at = s.received_at,"
    " detail = s.detail, steps = coalesce(s.steps::jsonb, e.steps)"
    " FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[],"
    " $5::float8[], $6::float8[], $7::jsonb[], $21::uuid[], $22::text[])"
    " AS s (cid, outcome, premium, message, ready_at, received_at, detail, calc, steps)"
    " WHERE e.correlation_id = s.cid AND s.calc IN (SELECT id FROM lk)),"
    " tm AS (UPDATE exchanges SET outcome = 'timed_out', received_at = $8"
    " WHERE correlation_id = ANY($9::uuid[]) AND calculation_id IN (SELECT id FROM lk)),"
    " cu AS (UPDATE calculations AS c SET event_seq = v.seq,"
    " completed_at = CASE WHEN v.complete THEN $8 ELSE c.completed_at END,"
    " closed_at = CASE WHEN v.close THEN $8 ELSE c.closed_at END"
    " FROM unnest($10::uuid[], $11::int[], $12::bool[], $13::bool[])"
    " AS v (id, seq, complete, close) WHERE c.id = v.id AND c.id IN (SELECT id FROM lk)),"
    # ORDER BY the arrays' order: ids (the publishing order) follow the plans' events.
    " ins AS (INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
    " leased_until) SELECT $14, e.body, e.headers, e.calc, $8, $15"
    " FROM unnest($16::bytea[], $17::jsonb[], $18::uuid[]) WITH ORDINALITY"
    " AS e (body, headers, calc, n) WHERE e.calc IN (SELECT id FROM lk)"
    f" ORDER BY e.n RETURNING calculation_id, {OUTBOX_COLUMNS}),"
    " fl AS (UPDATE outbox SET leased_until = $15 WHERE calculation_id = ANY($19::uuid[])"
    " AND calculation_id IN (SELECT id FROM lk) AND sent_at IS NULL AND destination = $14"
    f" RETURNING calculation_id, {OUTBOX_COLUMNS})"
    # A row per calculation carried out (id NULL), then its events.
    " SELECT id AS calculation_id, NULL::bigint AS id, NULL::text AS destination,"
    " NULL::bytea AS body, NULL::jsonb AS headers FROM lk"
    " UNION ALL SELECT * FROM ins UNION ALL SELECT * FROM fl"
)


async def carry_out(
    conn: Conn,
    plans: Sequence[tuple[CalcState, Plan]],
    *,
    versions: Versions,
    topic: str,
    now: float,
    lease: float,
    steps: Mapping[UUID, str] | None = None,
) -> tuple[set[UUID], list[tuple[UUID, list[OutboxMessage]]]]:
    """Apply ``plans`` (see :class:`osago.lifecycle.Plan`), each on its calculation's state,
    where the calculation is still at the version (``versions``) its state was read at.
    Return the calculations carried out, and (calculation id, its events to publish) for
    each of them with any; a calculation left out was written meanwhile: plan it again.
    An exchange settled here gets its ``steps`` (JSON text, by correlation id), if given.

    Why one statement for the whole batch: a worker settles the answers that arrived
    together at once, and each statement is a round trip (a socket write that wakes the
    backend, the costliest thing a worker did). A calculation with several plans here (two
    of its insurers settled together) gets its last seq and every flag any plan set; a
    completion publishes every unsent event of its calculation, `completed` last.
    """
    plans = [(state, plan) for state, plan in plans if not plan.empty]
    if not plans:
        return set(), []
    settles = [
        (p.settled, o, state.id) for state, p in plans if (o := p.settle) is not None and p.settled
    ]
    calcs: dict[UUID, tuple[int, bool, bool]] = {}
    for state, p in plans:
        _, complete, close = calcs.get(state.id, (0, False, False))
        calcs[state.id] = (p.seq, complete or p.complete, close or p.close)
    events = [(state.id, e) for state, p in plans for e in p.events]
    rows = await conn.fetch(
        _CARRY_OUT,
        [cid for cid, _, _ in settles],
        [o.kind.value for _, o, _ in settles],
        [o.premium for _, o, _ in settles],
        [o.message for _, o, _ in settles],
        [o.ready_at for _, o, _ in settles],
        [o.received_at for _, o, _ in settles],
        [o.extras() for _, o, _ in settles],
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
        [versions[calc_id] for calc_id in calcs],
        [calc_id for _, _, calc_id in settles],
        [steps.get(cid) if steps else None for cid, _, _ in settles],
    )
    applied: set[UUID] = set()
    by_calc: dict[UUID, list[Any]] = {}
    for r in rows:
        if r["id"] is None:
            applied.add(r["calculation_id"])
        else:
            by_calc.setdefault(r["calculation_id"], []).append(r)
    return applied, [(calc_id, messages(rows)) for calc_id, rows in by_calc.items()]


async def settle_answers(
    answers: Sequence[tuple[UUID, Outcome]],
    topic: str,
    now: float,
    lease: float,
    steps: Mapping[UUID, Sequence[Step]],
    conn: Conn,
) -> dict[UUID, list[OutboxMessage]]:
    """Store.settle_exchanges, optimistically: read, plan, write where the version still
    holds; the calculations written meanwhile are read and planned again. Run it outside a
    transaction (each statement commits alone); a plan is carried out whole or not at all.

    Why the steps ride with the outcomes: written apart, they were a third update of each
    exchange row and a statement of their own. Those of answers that settle nothing (a
    repeat, a closed calculation) are written after, as record_steps would."""
    out: dict[UUID, list[OutboxMessage]] = {}
    texts = {cid: steps_text(done) for cid, done in steps.items()}
    pending = list(answers)
    for _ in range(_SETTLE_ROUNDS):
        states, versions = await read_states(conn, [cid for cid, _ in pending])
        settling = plan_answers(states, pending, now)
        applied, done = await carry_out(
            conn, settling.plans, versions=versions, topic=topic, now=now, lease=lease, steps=texts
        )
        for state, plan in settling.plans:
            if state.id in applied and plan.settle is not None and plan.settled:
                texts.pop(plan.settled, None)
        again = {s.id for s, p in settling.plans if not p.empty and s.id not in applied}
        calc_of = settling.calc_of
        for cid, events in settling.hand_out(done).items():
            if calc_of[cid] not in again:
                out[cid] = events
        pending = [a for a in pending if calc_of.get(a[0]) in again]
        if not pending:
            if texts:
                await record_steps_text(texts, conn)
            return out
    raise StoreError("settle_exchanges", f"still contended after {_SETTLE_ROUNDS} rounds")


async def complete_due(
    topic: str, now: float, lease: float, limit: int, conn: Conn
) -> list[OutboxMessage]:
    """Store.complete_due, inside a transaction: the due calculations, locked first."""
    # SKIP LOCKED: a row being settled (or held by another keeper) is left for later.
    due = await conn.fetch(
        f"SELECT {CALC_COLUMNS} FROM calculations"
        " WHERE (completed_at IS NULL AND deadline_at <= $1)"
        " OR (closed_at IS NULL AND closes_at <= $1)"
        " ORDER BY deadline_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    plans = [(state, on_due(state, now)) for state in await load_states(conn, due)]
    # Locked: every version read holds, every plan is carried out.
    versions = {r["id"]: r["version"] for r in due}
    _, done = await carry_out(conn, plans, versions=versions, topic=topic, now=now, lease=lease)
    return sorted((m for _, msgs in done for m in msgs), key=lambda m: m.id)
