"""The lifecycle's rules, pure: a state and what happened in, a plan out (no store, no I/O)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from osago.lifecycle import CalcState, ExchangeState, Plan, Timing, accept, on_answer, on_due
from osago.models import Outcome, OutcomeKind
from tests.factories import MINIMAL_BODY, validated

A, B = uuid.uuid4(), uuid.uuid4()


def state(**changes: object) -> CalcState:
    base = CalcState(
        id=uuid.uuid4(),
        user_id="user-42",
        stub={"message": "no insurer answered in time"},
        deadline_at=1060.0,
        closes_at=1180.0,
        completed_at=None,
        closed_at=None,
        seq=0,
        exchanges=(ExchangeState(A, "aurora", "Aurora"), ExchangeState(B, "borealis", "Borealis")),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def settled(s: CalcState, cid: uuid.UUID, kind: OutcomeKind) -> CalcState:
    """``s`` with the exchange ``cid`` ended as ``kind``."""
    xs = tuple(replace(x, outcome=kind) if x.correlation_id == cid else x for x in s.exchanges)
    return replace(s, exchanges=xs)


def offer(at: float) -> Outcome:
    return Outcome(OutcomeKind.OFFER, received_at=at, premium=5000.0, ready_at=at - 0.1)


def kinds(plan: Plan) -> list[tuple[str, int]]:
    return [(json.loads(e.body)["type"], json.loads(e.body)["seq"]) for e in plan.events]


def test_an_answer_before_the_deadline_is_stored_and_shown() -> None:
    plan = on_answer(state(), A, offer(1010.0), 1010.0)
    assert (plan.settled, plan.settle) == (A, offer(1010.0))
    assert kinds(plan) == [("offer", 1)]
    assert (plan.seq, plan.complete, plan.close, plan.flush) == (1, False, False, False)
    assert plan.events[0].headers["event-type"] == "offer"


def test_the_last_answer_completes_and_closes_counting_itself() -> None:
    s = settled(state(seq=1), A, OutcomeKind.REFUSED)
    plan = on_answer(s, B, offer(1020.0), 1020.0)
    assert kinds(plan) == [("offer", 2), ("completed", 3)]
    assert json.loads(plan.events[1].body)["offers"] == 1
    assert json.loads(plan.events[1].body)["stub"] is None
    assert (plan.complete, plan.close, plan.flush, plan.timed_out) == (True, True, True, ())


def test_an_answer_after_the_deadline_completes_first_and_is_late() -> None:
    plan = on_answer(state(), A, offer(1060.5), 1060.5)
    assert kinds(plan) == [("completed", 1), ("offer", 2)]
    assert plan.settle is not None
    assert plan.settle.late
    assert json.loads(plan.events[1].body)["late"] is True
    done = json.loads(plan.events[0].body)
    assert (done["offers"], done["stub"]) == (0, {"message": "no insurer answered in time"})
    assert (plan.complete, plan.close, plan.flush) == (True, False, True)


def test_a_late_answer_to_a_completed_calculation_is_shown_marked_late() -> None:
    plan = on_answer(state(completed_at=1060.0, seq=1), A, offer(1100.0), 1100.0)
    assert kinds(plan) == [("offer", 2)]
    assert plan.settle is not None
    assert plan.settle.late
    assert (plan.complete, plan.flush) == (False, False)


def test_the_last_late_answer_closes_without_a_second_completed() -> None:
    s = settled(state(completed_at=1060.0, seq=1), A, OutcomeKind.FAILED)
    plan = on_answer(s, B, offer(1100.0), 1100.0)
    assert kinds(plan) == [("offer", 2)]
    assert (plan.complete, plan.close) == (False, True)


def test_only_the_first_outcome_counts_and_only_while_open() -> None:
    s = settled(state(seq=1), A, OutcomeKind.OFFER)
    assert on_answer(s, A, offer(1011.0), 1011.0).empty
    assert on_answer(state(closed_at=1180.0, seq=3), B, offer(1200.0), 1200.0).empty


def test_a_timed_out_outcome_is_stored_without_an_event() -> None:
    plan = on_answer(state(), A, Outcome(OutcomeKind.TIMED_OUT, received_at=1010.0), 1010.0)
    assert plan.settle is not None
    assert plan.events == ()


def test_the_keeper_completes_at_the_deadline_and_closes_at_the_window_end() -> None:
    assert on_due(state(), 1059.9).empty
    plan = on_due(state(), 1060.0)
    assert kinds(plan) == [("completed", 1)]
    assert (plan.complete, plan.close, plan.flush) == (True, False, True)
    s = settled(state(completed_at=1060.0, seq=2), A, OutcomeKind.OFFER)
    closing = on_due(s, 1180.0)
    assert (closing.events, closing.close, closing.timed_out) == ((), True, (B,))


def test_a_keeper_that_ran_late_completes_and_closes_at_once() -> None:
    plan = on_due(state(), 1200.0)
    assert kinds(plan) == [("completed", 1)]
    assert (plan.complete, plan.close, set(plan.timed_out)) == (True, True, {A, B})


def test_next_due_is_the_deadline_then_the_closing_then_nothing() -> None:
    assert state().next_due == 1060.0
    assert state(completed_at=1060.0).next_due == 1180.0
    assert state(completed_at=1060.0, closed_at=1180.0).next_due is None


def test_accept_makes_one_exchange_per_insurer_and_the_timing() -> None:
    class Ins:
        def __init__(self, code: str) -> None:
            self.code, self.name = code, code.title()

    body = validated({**MINIMAL_BODY, "request_id": str(A)})
    calc = accept(body, [Ins("aurora"), Ins("cedar")], now=1000.0, timing=Timing(60.0, 120.0))
    assert (calc.id, calc.deadline_at, calc.closes_at) == (A, 1060.0, 1180.0)
    assert [(x.insurer, x.insurer_name) for x in calc.exchanges] == [
        ("aurora", "Aurora"),
        ("cedar", "Cedar"),
    ]
    assert len({x.correlation_id for x in calc.exchanges}) == 2
    assert calc.stub["premium_min"] < calc.stub["premium_max"]
    assert accept(body, [], now=1.0, timing=Timing()).request_hash == calc.request_hash


# A run: each step is an insurer's answer (index, kind, time offset) or the keeper at a time.
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("answer"),
            st.integers(0, 3),
            st.sampled_from(list(OutcomeKind)),
            st.floats(0, 250),
        ),
        st.tuples(st.just("due"), st.just(0), st.just(OutcomeKind.OFFER), st.floats(0, 250)),
    ),
    max_size=12,
)


def _apply(s: CalcState, plan: Plan, cid: uuid.UUID | None, now: float) -> CalcState:
    xs = tuple(
        replace(x, outcome=plan.settle.kind)
        if plan.settle is not None and x.correlation_id == plan.settled == cid
        else replace(x, outcome=OutcomeKind.TIMED_OUT)
        if x.correlation_id in plan.timed_out
        else x
        for x in s.exchanges
    )
    return replace(
        s,
        exchanges=xs,
        seq=plan.seq,
        completed_at=now if plan.complete else s.completed_at,
        closed_at=now if plan.close else s.closed_at,
    )


@given(_steps)
def test_any_run_keeps_the_promises(steps: list[tuple[str, int, OutcomeKind, float]]) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    s = replace(
        state(), exchanges=tuple(ExchangeState(c, f"i{n}", f"I{n}") for n, c in enumerate(ids))
    )
    now = 1000.0
    events: list[dict[str, object]] = []
    for what, index, kind, dt in steps:
        now += dt / 10
        if what == "answer":
            cid: uuid.UUID | None = ids[index]
            plan = on_answer(s, ids[index], Outcome(kind, received_at=now), now)
        else:
            cid = None
            plan = on_due(s, now)
        assert plan.seq == s.seq + len(plan.events)  # seqs are consecutive
        if s.closed_at is not None:
            assert plan.empty  # nothing after closing
        events += [json.loads(e.body) for e in plan.events]
        s = _apply(s, plan, cid, now)
    types = [e["type"] for e in events]
    assert types.count("completed") <= 1
    if "completed" in types:
        after = events[types.index("completed") + 1 :]
        assert all(e.get("late") for e in after if e["type"] == "offer")  # none on time after
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    insurers = [e["insurer"] for e in events if e["type"] != "completed"]
    assert len(insurers) == len(set(insurers))  # one outcome per insurer
    if s.closed_at is not None:
        assert s.completed_at is not None
        assert all(x.outcome is not None for x in s.exchanges)
