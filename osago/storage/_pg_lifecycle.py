"""Carrying out lifecycle plans in SQL: read a calculation's state, apply a :class:`Plan`.

asyncio-side helpers for :mod:`osago.storage.postgres`, run in one bridge crossing. The
rules live in :mod:`osago.lifecycle`; nothing here decides anything.

Why optimistic: a plan is carried out only on the calculation row it was planned on. Its
version is the row's ``xmin`` (the transaction that last wrote it; every plan carried out
writes the row). Settling an answer was BEGIN, a row lock, a read, the write and COMMIT:
five round trips, most of what a worker spent on PostgreSQL. Now it is one read (its own
snapshot, no lock) and one write that locks the rows still at the version read, in id
order, and changes only those; a calculation written meanwhile (another answer, the
keeper) comes back from that write as it is now, and is planned again. The read is skipped
when the store already knows the calculation's state (see :mod:`osago.storage._known`).
The keeper still locks first (SKIP LOCKED): its rows cannot change under it, so its
versions always hold.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from osago.lifecycle import CalcState, ExchangeState, Plan, on_due
from osago.models import OutboxMessage, OutcomeKind

__all__ = [
    "CALC_COLUMNS",
    "OUTBOX_COLUMNS",
    "Carried",
    "Versions",
    "carry_out",
    "complete_due",
    "load_states",
    "messages",
    "read_states",
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


def messages(rows: Sequence[Any]) -> list[OutboxMessage]:
    """Outbox rows as messages, in id order."""
    msgs = [OutboxMessage(r["id"], r["destination"], bytes(r["body"]), r["headers"]) for r in rows]
    return sorted(msgs, key=lambda m: m.id)


def _state(c: Any, calc_id: UUID, exchanges: Sequence[ExchangeState]) -> CalcState:
    return CalcState(
        calc_id,
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
    return [_state(c, c["id"], by_calc.get(c["id"], ())) for c in calcs]


# A calculation's state as one row: its exchanges (in insurer order) as arrays, its version.
_STATE_COLUMNS = (
    "c.user_id, c.stub, c.deadline_at, c.closes_at, c.completed_at, c.closed_at,"
    " c.event_seq, array_agg(e.correlation_id ORDER BY e.insurer) AS cids,"
    " array_agg(e.insurer ORDER BY e.insurer) AS insurers,"
    " array_agg(e.insurer_name ORDER BY e.insurer) AS names,"
    " array_agg(e.outcome ORDER BY e.insurer) AS outcomes"
)
# One snapshot, no lock.
_READ_STATES = (
    f"SELECT c.id, c.xmin::text AS version, {_STATE_COLUMNS}"
    " FROM calculations c JOIN exchanges e ON e.calculation_id = c.id"
    " WHERE c.id IN (SELECT calculation_id FROM exchanges WHERE correlation_id = ANY($1::uuid[]))"
    " GROUP BY c.id"
)


def _read_state(r: Any, calc_id: UUID) -> CalcState:
    """A row of _STATE_COLUMNS as a state."""
    return _state(
        r,
        calc_id,
        [
            ExchangeState(cid, code, name, OutcomeKind(o) if o else None)
            for cid, code, name, o in zip(
                r["cids"], r["insurers"], r["names"], r["outcomes"], strict=True
            )
        ],
    )


async def read_states(
    conn: Conn, correlation_ids: Sequence[UUID]
) -> tuple[list[CalcState], Versions]:
    """The states (and versions) of the calculations these exchanges belong to, unlocked."""
    rows = await conn.fetch(_READ_STATES, list(correlation_ids))
    return [_read_state(r, r["id"]) for r in rows], {r["id"]: r["version"] for r in rows}


# Every change a batch of plans makes, as one statement over arrays. `lk` locks, in id order
# (two writers of overlapping batches cannot deadlock), the calculations still at the version
# their plans were made on; every other part changes only those. Data-modifying CTEs all
# run, on one snapshot: `fl` (a completion's unsent events) cannot see the rows `ins` adds,
# so the events to publish are both. No row is changed twice: a batch either settles
# answers (on_answer) or times exchanges out (on_due), never both to one exchange.
# Why the calculations not carried out come back as they are: their plans were made on a
# version since overwritten (or a guess, see _known), and this is the read that planning
# them again needs, without a statement of its own. It reads this statement's snapshot,
# which may already be behind the row `lk` found changed: then one more round.
# Parameters are named (``:name``) and numbered per variant (_carry_out_sql).
_NO_STATE = (
    "NULL::text AS user_id, NULL::jsonb AS stub, NULL::float8 AS deadline_at,"
    " NULL::float8 AS closes_at, NULL::float8 AS completed_at, NULL::float8 AS closed_at,"
    " NULL::int AS event_seq, NULL::uuid[] AS cids, NULL::text[] AS insurers,"
    " NULL::text[] AS names, NULL::text[] AS outcomes"
)
_LOCK = (
    "WITH lk AS MATERIALIZED (SELECT c.id FROM calculations AS c"
    " JOIN unnest(:calcs::uuid[], :versions::text[]) AS v (id, version) ON c.id = v.id"
    " WHERE c.xmin::text = v.version ORDER BY c.id FOR UPDATE OF c),"
    " st AS (UPDATE exchanges AS e SET outcome = s.outcome, premium = s.premium,"
    " message = s.message, ready_at = s.ready_at, received_at = s.received_at,"
    " detail = s.detail, steps = coalesce(s.steps::jsonb, e.steps)"
    " FROM unnest(:cids::uuid[], :outcomes::text[], :premiums::float8[], :messages::text[],"
    " :ready::float8[], :received::float8[], :details::jsonb[], :settle_calcs::uuid[],"
    " :steps::text[])"
    " AS s (cid, outcome, premium, message, ready_at, received_at, detail, calc, steps)"
    " WHERE e.correlation_id = s.cid AND s.calc IN (SELECT id FROM lk)),"
)
_TIME_OUT = (
    " tm AS (UPDATE exchanges SET outcome = 'timed_out', received_at = :now::float8"
    " WHERE correlation_id = ANY(:timed_out::uuid[]) AND calculation_id IN (SELECT id FROM lk)),"
)
_WRITE = (
    " cu AS (UPDATE calculations AS c SET event_seq = v.seq,"
    " completed_at = CASE WHEN v.complete THEN :now::float8 ELSE c.completed_at END,"
    " closed_at = CASE WHEN v.close THEN :now::float8 ELSE c.closed_at END"
    " FROM unnest(:calcs::uuid[], :seqs::int[], :completes::bool[], :closes::bool[])"
    " AS v (id, seq, complete, close) WHERE c.id = v.id AND c.id IN (SELECT id FROM lk)"
    " RETURNING c.id, c.xmin::text AS version),"
    # ORDER BY the arrays' order: ids (the publishing order) follow the plans' events.
    " ins AS (INSERT INTO outbox (destination, body, headers, calculation_id, created_at,"
    " leased_until) SELECT :topic::text, e.body, e.headers, e.calc, :now::float8,"
    " :lease_until::float8"
    " FROM unnest(:bodies::bytea[], :headers::jsonb[], :event_calcs::uuid[]) WITH ORDINALITY"
    " AS e (body, headers, calc, n) WHERE e.calc IN (SELECT id FROM lk)"
    f" ORDER BY e.n RETURNING calculation_id, {OUTBOX_COLUMNS})"
)
# Why `coalesce(sent_at, 0) = 0` and not `sent_at IS NULL`: the latter lets the planner read
# the partial index outbox_unsent, which holds an entry for every row version ever unsent
# until VACUUM removes the dead ones (a bitmap scan never marks them dead): a capacity run
# found this CTE reading 10 000 entries to find none, 0.64 ms of a 0.73 ms statement, growing
# with the table. The calculation's own rows (outbox_by_calculation) are a dozen. (sent_at
# is a clock time, never 0.)
_FLUSH = (
    ", fl AS (UPDATE outbox SET leased_until = :lease_until::float8"
    " WHERE calculation_id = ANY(:flush::uuid[])"
    " AND calculation_id IN (SELECT id FROM lk) AND coalesce(sent_at, 0) = 0"
    " AND destination = :topic::text"
    f" RETURNING calculation_id, {OUTBOX_COLUMNS})"
)
# A row per calculation carried out (its new version), one per calculation not carried out
# (its state and version now; none if it is gone), then the events.
_RESULT = (
    " SELECT id AS calculation_id, NULL::bigint AS id, NULL::text AS destination,"
    f" NULL::bytea AS body, NULL::jsonb AS headers, version, {_NO_STATE} FROM cu"
    " UNION ALL SELECT c.id, NULL, NULL, NULL, NULL, c.xmin::text, "
    f" {_STATE_COLUMNS} FROM calculations c JOIN exchanges e ON e.calculation_id = c.id"
    " WHERE c.id = ANY(:calcs::uuid[]) AND c.id NOT IN (SELECT id FROM lk) GROUP BY c.id"
    f" UNION ALL SELECT *, NULL, {_NO_STATE} FROM ins"
)
_NAME = re.compile(r":([a-z_]+)(?=::)")


@functools.cache
def _carry_out_sql(timed_out: bool, flush: bool) -> tuple[str, tuple[str, ...]]:
    """The statement for a batch with (or without) exchanges to time out and completions to
    flush, and its parameters' names in ``$n`` order.

    Why variants: most batches settle an answer or two, and each part of the statement
    costs PostgreSQL its executor's set-up and its scan even when its arrays are empty."""
    sql = (
        _LOCK
        + (_TIME_OUT if timed_out else "")
        + _WRITE
        + (_FLUSH if flush else "")
        + _RESULT
        + (f" UNION ALL SELECT *, NULL, {_NO_STATE} FROM fl" if flush else "")
    )
    names: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"${names.setdefault(m.group(1), len(names) + 1)}"

    return _NAME.sub(number, sql), tuple(names)


@dataclass
class Carried:
    """What :func:`carry_out` did: the calculations carried out (with their new versions)
    and their events; and those left out, as they are now (with their versions)."""

    versions: Versions = field(default_factory=dict)
    events: list[tuple[UUID, list[OutboxMessage]]] = field(default_factory=list)
    current: list[CalcState] = field(default_factory=list)
    current_versions: Versions = field(default_factory=dict)


async def carry_out(
    conn: Conn,
    plans: Sequence[tuple[CalcState, Plan]],
    *,
    versions: Versions,
    topic: str,
    now: float,
    lease: float,
    steps: Mapping[UUID, str] | None = None,
) -> Carried:
    """Apply ``plans`` (see :class:`osago.lifecycle.Plan`), each on its calculation's state,
    where the calculation is still at the version (``versions``) its state was read at.
    A calculation left out was written meanwhile: it comes back as it is now, to plan
    again (none comes back for a calculation that is gone). An exchange settled here gets
    its ``steps`` (JSON text, by correlation id), if given.

    Why one statement for the whole batch: a worker settles the answers that arrived
    together at once, and each statement is a round trip (a socket write that wakes the
    backend, the costliest thing a worker did). A calculation with several plans here (two
    of its insurers settled together) gets its last seq and every flag any plan set; a
    completion publishes every unsent event of its calculation, `completed` last.
    """
    plans = [(state, plan) for state, plan in plans if not plan.empty]
    if not plans:
        return Carried()
    settles = [
        (p.settled, o, state.id) for state, p in plans if (o := p.settle) is not None and p.settled
    ]
    calcs: dict[UUID, tuple[int, bool, bool]] = {}
    for state, p in plans:
        _, complete, close = calcs.get(state.id, (0, False, False))
        calcs[state.id] = (p.seq, complete or p.complete, close or p.close)
    events = [(state.id, e) for state, p in plans for e in p.events]
    flush = list({state.id for state, p in plans if p.flush})
    timed_out = [cid for _, p in plans for cid in p.timed_out]
    args: dict[str, Any] = {
        "cids": [cid for cid, _, _ in settles],
        "outcomes": [o.kind.value for _, o, _ in settles],
        "premiums": [o.premium for _, o, _ in settles],
        "messages": [o.message for _, o, _ in settles],
        "ready": [o.ready_at for _, o, _ in settles],
        "received": [o.received_at for _, o, _ in settles],
        "details": [o.extras() for _, o, _ in settles],
        "now": now,
        "timed_out": timed_out,
        "calcs": list(calcs),
        "seqs": [seq for seq, _, _ in calcs.values()],
        "completes": [complete for _, complete, _ in calcs.values()],
        "closes": [close for _, _, close in calcs.values()],
        "topic": topic,
        "lease_until": now + lease,
        "bodies": [e.body for _, e in events],
        "headers": [dict(e.headers) for _, e in events],
        "event_calcs": [calc_id for calc_id, _ in events],
        "flush": flush,
        "versions": [versions[calc_id] for calc_id in calcs],
        "settle_calcs": [calc_id for _, _, calc_id in settles],
        "steps": [steps.get(cid) if steps else None for cid, _, _ in settles],
    }
    sql, names = _carry_out_sql(bool(timed_out), bool(flush))
    rows = await conn.fetch(sql, *(args[name] for name in names))
    carried = Carried()
    by_calc: dict[UUID, list[Any]] = {}
    for r in rows:
        calc_id = r["calculation_id"]
        if r["id"] is not None:
            by_calc.setdefault(calc_id, []).append(r)
        elif r["user_id"] is None:
            carried.versions[calc_id] = r["version"]
        else:
            carried.current.append(_read_state(r, calc_id))
            carried.current_versions[calc_id] = r["version"]
    carried.events = [(calc_id, messages(rows)) for calc_id, rows in by_calc.items()]
    return carried


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
    carried = await carry_out(conn, plans, versions=versions, topic=topic, now=now, lease=lease)
    return sorted((m for _, msgs in carried.events for m in msgs), key=lambda m: m.id)
