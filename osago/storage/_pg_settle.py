"""Store.settle_exchanges on PostgreSQL: plan on what is known, write where it still holds.

asyncio-side, run in one bridge crossing by :mod:`osago.storage.postgres`. A calculation's
state comes from what this store knows (:class:`~osago.storage._known.KnownStates`) or,
failing that, from a read; its plans are carried out where its version still holds
(:func:`~osago.storage._pg_lifecycle.carry_out`), and those written meanwhile come back
from that write as they are now and are planned again. So a settle on a known, current
state is one statement; one that guessed wrong, or knew nothing, is two, as every settle
was before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from osago.errors import StoreError
from osago.lifecycle import CalcState, Plan, applied
from osago.models import Outcome, Step
from osago.storage._known import KnownStates
from osago.storage._pg_lifecycle import Carried, Versions, carry_out, read_states
from osago.storage._pg_ops import record_steps_text, steps_text
from osago.storage._results import Settled
from osago.storage._settling import Settling, plan_answers

__all__ = ["settle_answers"]

Conn = Any  # asyncpg.Connection (untyped library)
# A settle whose calculations keep changing under it (their other answers, the keeper) is
# planned again. A round is lost only to another writer's success (or to a guess, once),
# so a calculation of n insurers loses at most about n rounds to its own answers.
_SETTLE_ROUNDS = 30


async def settle_answers(
    answers: Sequence[tuple[UUID, Outcome]],
    topic: str,
    now: float,
    lease: float,
    steps: Mapping[UUID, Sequence[Step]],
    known: KnownStates,
    conn: Conn,
) -> dict[UUID, Settled]:
    """Store.settle_exchanges, optimistically (see :mod:`osago.storage._pg_lifecycle`).
    Run it outside a transaction (each statement commits alone); a plan is carried out
    whole or not at all. ``known`` is used and kept up to date.

    Why the steps ride with the outcomes: written apart, they were a third update of each
    exchange row and a statement of their own. Those of answers that settle nothing (a
    repeat, a closed calculation) are written after, as record_steps would."""
    out: dict[UUID, Settled] = {}
    texts = {cid: steps_text(done) for cid, done in steps.items()}
    pending = list(answers)
    states: dict[UUID, CalcState] = {}
    versions: Versions = {}
    for cid, _ in pending:
        hit = known.of_exchange(cid)
        if hit is not None:
            states[hit[0].id], versions[hit[0].id] = hit
    for _ in range(_SETTLE_ROUNDS):
        have = {x.correlation_id for s in states.values() for x in s.exchanges}
        unread = [cid for cid, _ in pending if cid not in have]
        if unread:
            read, read_versions = await read_states(conn, unread)
            states.update((s.id, s) for s in read)
            versions.update(read_versions)
        settling = plan_answers(states.values(), pending, now)
        carried = await carry_out(
            conn, settling.plans, versions=versions, topic=topic, now=now, lease=lease, steps=texts
        )
        again = _remember(settling, carried, known, now)
        for state, plan in settling.plans:
            if state.id in carried.versions and plan.settle is not None and plan.settled:
                texts.pop(plan.settled, None)
        calc_of = settling.calc_of
        for cid, settled in settling.hand_out(carried.events).items():
            if calc_of[cid] not in again:
                out[cid] = settled
        pending = [a for a in pending if calc_of.get(a[0]) in again]
        if not pending:
            if texts:
                await record_steps_text(texts, conn)
            return out
        states = {s.id: s for s in carried.current if s.id in again}
        versions = carried.current_versions
    raise StoreError("settle_exchanges", f"still contended after {_SETTLE_ROUNDS} rounds")


def _remember(settling: Settling, carried: Carried, known: KnownStates, now: float) -> set[UUID]:
    """Keep what ``carried`` taught of each calculation planned; return those to plan again
    (written meanwhile, or gone)."""
    last: dict[UUID, tuple[CalcState, Plan]] = {}
    written: set[UUID] = set()  # the calculations with anything to carry out
    for state, plan in settling.plans:
        last[state.id] = (state, plan)
        if not plan.empty:
            written.add(state.id)
    for calc_id, (state, plan) in last.items():
        version = carried.versions.get(calc_id)
        if version is not None:  # carried out: its state is the last plan's, applied
            known.put(applied(state, plan, now), version)
        elif calc_id in written:
            known.forget(calc_id)
    again = written - carried.versions.keys()
    for state in carried.current:
        known.put(state, carried.current_versions[state.id])
    return again
