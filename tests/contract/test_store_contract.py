"""One contract for the Store port, run against the memory twin and real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
import trio

from osago.errors import StoreError
from osago.models import Job, Outcome, OutcomeKind, Push
from osago.storage import OUTBOX_CHANNEL, Store
from tests.factories import new_calculation

Q, T = "/queue/jobs", "/topic/results"


def offer(at: float, premium: float = 5000.0) -> Outcome:
    return Outcome(OutcomeKind.OFFER, received_at=at, premium=premium, ready_at=at - 0.1)


async def test_create_stores_request_and_one_job_per_insurer(store: Store) -> None:
    calc = new_calculation(insurers=("aurora", "borealis", "cedar"))
    await store.create_calculation(calc, queue=Q)
    view = await store.get_calculation(calc.id)
    assert view is not None
    assert view.to_json()["status"] == "pending"
    assert [e.status for e in view.exchanges] == ["pending"] * 3
    msgs = await store.claim_outbox(now=1000.0, lease=30.0, limit=100)
    jobs = [Job.decode(m.body) for m in msgs]
    assert {m.destination for m in msgs} == {Q}
    assert {j.insurer for j in jobs} == {"aurora", "borealis", "cedar"}
    assert {j.correlation_id for j in jobs} == {x.correlation_id for x in calc.exchanges}


async def test_failure_inside_the_transaction_leaves_nothing(store: Store) -> None:
    calc = new_calculation(insurers=("aurora", "aurora"))  # violates one exchange per insurer
    with pytest.raises(StoreError):
        await store.create_calculation(calc, queue=Q)
    assert await store.get_calculation(calc.id) is None
    assert await store.claim_outbox(now=1000.0, lease=30.0, limit=100) == []


async def test_claims_are_leased_and_released_only_by_expiry(store: Store) -> None:
    await store.create_calculation(new_calculation(), queue=Q)
    first = await store.claim_outbox(now=1000.0, lease=30.0, limit=1)
    second = await store.claim_outbox(now=1000.0, lease=30.0, limit=10)
    assert len(first) == 1
    assert len(second) == 1
    assert first[0].id != second[0].id
    assert await store.claim_outbox(now=1029.0, lease=30.0, limit=10) == []
    await store.mark_sent([first[0].id], now=1001.0)
    again = await store.claim_outbox(now=1031.0, lease=30.0, limit=10)
    assert [m.id for m in again] == [second[0].id]


async def test_concurrent_claims_never_share_a_row(store: Store) -> None:
    for _ in range(20):
        await store.create_calculation(new_calculation(insurers=("a", "b", "c", "d", "e")), queue=Q)
    claimed: list[int] = []

    async def relay() -> None:
        while batch := await store.claim_outbox(now=1000.0, lease=30.0, limit=7):
            claimed.extend(m.id for m in batch)

    async with trio.open_nursery() as n:
        for _ in range(4):
            n.start_soon(relay)
    assert len(claimed) == len(set(claimed)) == 100


async def test_submission_is_remembered_for_redelivery(store: Store) -> None:
    calc = new_calculation()
    await store.create_calculation(calc, queue=Q)
    cid = calc.exchanges[0].correlation_id
    other = calc.exchanges[1].correlation_id
    await store.record_submissions([(cid, "remote-1"), (other, "remote-2")])
    loaded = await store.load_exchanges([cid, other, uuid.uuid4()])
    assert set(loaded) == {cid, other}  # an unknown id is left out
    assert loaded[other].remote_id == "remote-2"
    ex = loaded[cid]
    assert (ex.remote_id, ex.insurer, ex.user_id, ex.settled) == (
        "remote-1",
        "aurora",
        "user-42",
        False,
    )
    assert ex.deadline_at == calc.deadline_at
    assert ex.request.value() == calc.request  # as text, to pass on to the insurer
    assert loaded[other].request == ex.request


async def test_orphaned_events_are_relayed_after_their_lease(store: Store) -> None:
    calc = new_calculation()
    await store.create_calculation(calc, queue=Q)
    await store.mark_sent(
        [m.id for m in await store.claim_outbox(now=1000, lease=30, limit=9)], now=1000.0
    )
    await store.settle_exchange(
        calc.exchanges[0].correlation_id, offer(1010.0), topic=T, now=1010.0, lease=30.0
    )
    assert await store.claim_outbox(now=1039.0, lease=30.0, limit=10) == []
    orphans = await store.claim_outbox(now=1041.0, lease=30.0, limit=10)
    assert [json.loads(m.body)["type"] for m in orphans] == ["offer"]


async def test_listen_wakes_on_new_calculation(store: Store) -> None:
    async with store.listen(OUTBOX_CHANNEL) as wake:
        await store.create_calculation(new_calculation(), queue=Q)
        with trio.fail_after(5):
            await wake.wait()


async def test_unknown_ids(store: Store) -> None:
    calc = new_calculation()
    assert await store.get_calculation(calc.id) is None
    assert await store.load_exchanges([calc.exchanges[0].correlation_id]) == {}
    with pytest.raises(StoreError):
        await store.settle_exchange(
            calc.exchanges[0].correlation_id, offer(1.0), topic=T, now=1.0, lease=1.0
        )


async def test_retention_deletes_only_closed_calculations_past_the_cutoff(store: Store) -> None:
    old = new_calculation(created_at=1000.0, deadline=60.0)
    young = new_calculation(created_at=5000.0, deadline=60.0)
    running = new_calculation(created_at=9000.0, deadline=60.0)
    for calc in (old, young, running):
        await store.create_calculation(calc, queue=Q)
    for now in (1100.0, 5100.0):  # old closes at 1100, young at 5100
        events = await store.complete_due(topic=T, now=now, lease=30.0, limit=100)
        assert [m.headers["event-type"] for m in events] == ["completed"]
    jobs_and_events = await store.claim_outbox(now=1e9, lease=30.0, limit=100)
    await store.mark_sent([m.id for m in jobs_and_events], now=5100.0)

    assert await store.purge_closed(before=2000.0, limit=100) == 1
    assert await store.get_calculation(old.id) is None
    assert await store.get_calculation(young.id) is not None
    assert await store.get_calculation(running.id) is not None
    assert old.exchanges[0].correlation_id not in await store.load_exchanges(
        [x.correlation_id for x in old.exchanges]
    )
    assert await store.purge_closed(before=1e9, limit=100) == 1  # young; running is open
    assert await store.get_calculation(running.id) is not None


async def test_a_calculations_outbox_rows_are_its_trace(store: Store) -> None:
    calc = new_calculation(insurers=("aurora", "borealis"))
    other = new_calculation(insurers=("aurora",))
    await store.create_calculation(calc, queue=Q)
    await store.create_calculation(other, queue=Q)
    msgs = await store.claim_outbox(now=1000.0, lease=30.0, limit=100)
    mine = [m.id for m in msgs if Job.decode(m.body).calculation_id == calc.id]
    await store.mark_sent(mine[:1], now=1000.5)
    trace = await store.outbox_of(calc.id)
    assert len(trace) == 2
    assert {Job.decode(t.body).insurer for t in trace} == {"aurora", "borealis"}
    assert sorted(t.sent_at is not None for t in trace) == [False, True]
    assert all(t.created_at == calc.created_at and t.destination == Q for t in trace)


async def test_steps_and_pushes_are_a_calculations_trail_until_it_is_purged(store: Store) -> None:
    calc = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora", "borealis"))
    other = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora",))
    for c in (calc, other):
        await store.create_calculation(c, queue=Q)
    aurora, borealis = calc.exchanges
    await store.record_steps(
        [
            (aurora.correlation_id, [(1000.1, "picked up"), (1000.2, "submitted as a-1")]),
            (other.exchanges[0].correlation_id, [(1000.1, "picked up")]),
        ]
    )
    await store.record_steps([(aurora.correlation_id, [(1000.1, "picked up"), (1003.0, "x")])])
    await store.record_pushes(
        [
            Push(calc.id, 2, "offer", 1003.5),
            Push(calc.id, 1, "offer", 1002.0),
            Push(other.id, 1, "offer", 1002.0),
        ]
    )
    await store.record_steps([(uuid.uuid4(), [(1.0, "an exchange that is not there")])])

    trail = await store.trail_of(calc.id)
    assert trail.steps == {"aurora": [(1000.1, "picked up"), (1003.0, "x")]}  # the latest wins
    assert [(p.seq, p.type, p.at) for p in trail.pushes] == [
        (1, "offer", 1002.0),
        (2, "offer", 1003.5),
    ]
    assert borealis.insurer not in trail.steps

    await store.complete_due(topic=T, now=1100.0, lease=30.0, limit=100)
    await store.purge_closed(before=1e9, limit=100)
    gone = await store.trail_of(calc.id)
    assert (gone.steps, list(gone.pushes)) == ({}, [])


async def test_steps_given_with_answers_are_kept_whether_or_not_they_settle(
    store: Store,
) -> None:
    calc = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora", "borealis"))
    await store.create_calculation(calc, queue=Q)
    aurora, borealis = (x.correlation_id for x in calc.exchanges)
    await store.record_steps([(borealis, [(1000.1, "picked up")])])

    await store.settle_exchanges(
        [(aurora, offer(1002.0))],
        topic=T,
        now=1002.0,
        lease=30.0,
        steps={aurora: [(1000.1, "picked up"), (1002.0, "polled: answered")]},
    )
    # A repeat settles nothing; its steps are still the exchange's latest.
    await store.settle_exchanges(
        [(aurora, offer(1003.0, 1.0)), (borealis, offer(1003.0))],
        topic=T,
        now=1003.0,
        lease=30.0,
        steps={aurora: [(1003.0, "answered again")]},
    )

    trail = await store.trail_of(calc.id)
    assert trail.steps == {
        "aurora": [(1003.0, "answered again")],
        "borealis": [(1000.1, "picked up")],  # given no steps: its own stay
    }
    view = await store.get_calculation(calc.id)
    assert view is not None
    assert [x.outcome.premium for x in view.exchanges if x.outcome] == [5000.0, 5000.0]


async def test_which_exchanges_are_settled_is_a_light_read(store: Store) -> None:
    calc = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora", "borealis"))
    await store.create_calculation(calc, queue=Q)
    aurora, borealis = (x.correlation_id for x in calc.exchanges)
    stranger = uuid.uuid4()
    assert await store.settled_among([aurora, borealis, stranger]) == {
        aurora: False,
        borealis: False,
    }
    await store.settle_exchange(aurora, offer(1001.0), topic=T, now=1001.0, lease=30.0)
    assert await store.settled_among([aurora, borealis]) == {aurora: True, borealis: False}
    await store.complete_due(topic=T, now=1100.0, lease=30.0, limit=10)  # closes it
    assert await store.settled_among([borealis]) == {borealis: True}
