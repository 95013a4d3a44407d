"""Settling many answers in one transaction: how they are planned and who publishes what.

Both stores use this, so they cannot disagree. Answers are planned in the order given, each
on its calculation's state as the answers before it left it (:func:`osago.lifecycle.applied`):
two insurers of one calculation settled together are two plans, the second seeing the
first's outcome. Every event a batch yields for one calculation goes to the caller of that
calculation's LAST answer, in outbox order: one caller publishes them, so an offer is not
published twice by two callers, and ``completed`` still goes out after every offer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from osago.lifecycle import CalcState, Plan, applied, on_answer
from osago.models import OutboxMessage, Outcome
from osago.storage._results import Settled

__all__ = ["Settling", "plan_answers"]


@dataclass
class Settling:
    """The plans for a batch of answers, and whose caller gets each calculation's events."""

    plans: list[tuple[CalcState, Plan]] = field(default_factory=list)
    last: dict[UUID, UUID] = field(default_factory=dict)  # calculation id -> correlation id
    answered: list[UUID] = field(default_factory=list)  # the answers of known exchanges
    calc_of: dict[UUID, UUID] = field(default_factory=dict)  # correlation id -> calculation

    def hand_out(
        self, events: Iterable[tuple[UUID, Sequence[OutboxMessage]]]
    ) -> dict[UUID, Settled]:
        """What each known answer did, its events to publish from (calculation id, its
        events) as carried out (most of them empty)."""
        out: dict[UUID, list[OutboxMessage]] = {cid: [] for cid in self.answered}
        by_calc: dict[UUID, dict[int, OutboxMessage]] = {}
        for calc_id, msgs in events:
            by_calc.setdefault(calc_id, {}).update((m.id, m) for m in msgs)
        for calc_id, msgs_by_id in by_calc.items():
            out[self.last[calc_id]] = [msgs_by_id[i] for i in sorted(msgs_by_id)]
        stored = {plan.settled for _, plan in self.plans if plan.settle is not None}
        return {cid: Settled(cid in stored, msgs) for cid, msgs in out.items()}


def plan_answers(
    states: Iterable[CalcState], answers: Sequence[tuple[UUID, Outcome]], now: float
) -> Settling:
    """Plan ``answers`` (correlation id, outcome) on the locked ``states``; an answer whose
    calculation is not among them is left out."""
    current = {s.id: s for s in states}
    calc_of = {x.correlation_id: s.id for s in current.values() for x in s.exchanges}
    settling = Settling(calc_of=calc_of)
    # Why the previous plan is applied only when another answer of its calculation comes:
    # most batches hold one answer per calculation, and nothing reads the state after it.
    unapplied: dict[UUID, Plan] = {}
    for correlation_id, outcome in answers:
        calc_id = calc_of.get(correlation_id)
        if calc_id is None:
            continue
        state = current[calc_id]
        before = unapplied.pop(calc_id, None)
        if before is not None:
            state = current[calc_id] = applied(state, before, now)
        plan = on_answer(state, correlation_id, outcome, now)
        settling.plans.append((state, plan))
        settling.answered.append(correlation_id)
        unapplied[calc_id] = plan
        settling.last[calc_id] = correlation_id
    return settling
