"""The rules of a calculation's life, as pure functions from a state to a :class:`Plan`.

- An answer before the deadline is stored and shown at once (an ``offer`` or ``no_offer``
  event).
- An answer after the deadline is ``late``: if nobody has completed the calculation yet,
  ``completed`` goes out first, then the late answer, so no user ever sees an on-time
  offer after ``completed``.
- The answer that settles the last exchange completes the calculation (if the deadline has
  not) and closes it: nothing is left to wait for.
- At the deadline the keeper completes it (``completed`` carries the stub when no offer
  came); at the end of the late window it closes it, and exchanges still pending time out.
- A completion hands the caller every unsent event of the calculation, ``completed`` last:
  an offer stored by another task but not yet published goes out ahead of the end.
- A closed calculation, or an exchange that already has an outcome, takes nothing more.

Like httpcore's ``_assign_requests_to_connections``, this plans and does no I/O: the
PostgreSQL store and its memory twin carry the same plans out, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from osago.events import completed_event, encode_event, event_headers, insurer_event
from osago.lifecycle._plan import CalcState, ExchangeState, NewEvent, Plan
from osago.models import Outcome, OutcomeKind

__all__ = ["applied", "on_answer", "on_due"]


class _Planner:
    """Accumulates one plan; events get consecutive seqs."""

    def __init__(self, state: CalcState, now: float) -> None:
        self.state = state
        self.now = now
        self.seq = state.seq
        self.events: list[NewEvent] = []
        self.settled: UUID | None = None
        self.settle: Outcome | None = None
        self.timed_out: tuple[UUID, ...] = ()
        self.complete = False
        self.close = False

    def _event(self, event: dict[str, object]) -> None:
        self.events.append(NewEvent(encode_event(event), event_headers(event)))

    def completed(self, offers: int) -> None:
        s = self.state
        self.seq += 1
        self.complete = True
        self._event(
            completed_event(
                s.id,
                s.user_id,
                self.seq,
                offers=offers,
                stub=dict(s.stub),
                completed_at=self.now,
                deadline_at=s.deadline_at,
            )
        )

    def answer(self, ex: ExchangeState, outcome: Outcome) -> None:
        self.settled, self.settle = ex.correlation_id, outcome
        if outcome.kind is not OutcomeKind.TIMED_OUT:
            s = self.state
            self.seq += 1
            self._event(
                insurer_event(s.id, s.user_id, self.seq, ex.insurer, ex.insurer_name, outcome)
            )

    def closed(self, timed_out: tuple[UUID, ...]) -> None:
        self.close = True
        self.timed_out = timed_out

    def plan(self) -> Plan:
        return Plan(
            seq=self.seq,
            settled=self.settled,
            settle=self.settle,
            timed_out=self.timed_out,
            complete=self.complete,
            close=self.close,
            events=tuple(self.events),
            flush=self.complete,
        )


def on_answer(state: CalcState, correlation_id: UUID, outcome: Outcome, now: float) -> Plan:
    """An insurer's exchange ended with ``outcome`` at ``now``.

    KeyError when ``correlation_id`` is not one of the calculation's exchanges.
    """
    ex = state.exchange(correlation_id)
    if state.closed_at is not None or ex.outcome is not None:
        return Plan(seq=state.seq)  # only the first outcome counts, and only while open
    p = _Planner(state, now)
    late = state.completed_at is not None
    if not late and now >= state.deadline_at:
        p.completed(state.offers)  # the keeper has not run yet: `completed` goes first
        late = True
    if late:
        outcome = replace(outcome, late=True)
    p.answer(ex, outcome)
    if all(x.outcome is not None for x in state.exchanges if x.correlation_id != correlation_id):
        if not late:
            p.completed(state.offers + (outcome.kind is OutcomeKind.OFFER))
        p.closed(())
    return p.plan()


def on_due(state: CalcState, now: float) -> Plan:
    """The keeper's turn at ``now``: complete at the deadline, close at the window's end."""
    p = _Planner(state, now)
    if state.completed_at is None and state.deadline_at <= now:
        p.completed(state.offers)
    if state.closed_at is None and state.closes_at <= now:
        p.closed(tuple(x.correlation_id for x in state.exchanges if x.outcome is None))
    return p.plan()


def applied(state: CalcState, plan: Plan, now: float) -> CalcState:
    """``state`` once ``plan`` is carried out at ``now``: what the next answer in the same
    transaction is planned on (a store settling several answers of one calculation at once).
    """
    if plan.empty:
        return state
    timed_out = set(plan.timed_out)

    def outcome(x: ExchangeState) -> OutcomeKind | None:
        if x.correlation_id == plan.settled and plan.settle is not None:
            return plan.settle.kind
        if x.correlation_id in timed_out:
            return OutcomeKind.TIMED_OUT
        return x.outcome

    return replace(
        state,
        seq=plan.seq,
        completed_at=now if plan.complete else state.completed_at,
        closed_at=now if plan.close else state.closed_at,
        exchanges=tuple(
            x if (kind := outcome(x)) is x.outcome else replace(x, outcome=kind)
            for x in state.exchanges
        ),
    )
