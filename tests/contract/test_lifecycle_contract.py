"""The lifecycle as each store carries it out: the same plans on the memory twin and PostgreSQL.

The rules themselves are pinned, pure, in tests/unit/test_lifecycle.py; these check that both
stores apply plans the same way: events in order, completion flushing unsent events first,
late answers marked, closing timing out the rest.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from functools import partial

import trio

from osago.models import Outcome, OutcomeKind
from osago.storage import KnownExchange, Store
from tests.factories import new_calculation

Q, T = "/queue/jobs", "/topic/results"


def offer(at: float, premium: float = 5000.0) -> Outcome:
    return Outcome(OutcomeKind.OFFER, received_at=at, premium=premium, ready_at=at - 0.1)


async def test_offer_is_stored_once_and_last_settlement_completes(store: Store) -> None:
    calc = new_calculation()
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    events = await store.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
    assert [json.loads(e.body)["type"] for e in events] == ["offer"]
    body = json.loads(events[0].body)
    assert (body["seq"], body["insurer"], body["premium"], body["user_id"]) == (
        1,
        "aurora",
        5000.0,
        "user-42",
    )
    assert await store.settle_exchange(a, offer(1011.0, 1.0), topic=T, now=1011, lease=30) == []
    await store.mark_sent([events[0].id], now=1010.5)
    refused = Outcome(OutcomeKind.REFUSED, received_at=1012.0, message="scoring")
    events = await store.settle_exchange(b, refused, topic=T, now=1012.0, lease=30.0)
    assert [json.loads(e.body)["type"] for e in events] == ["no_offer", "completed"]
    no_offer, done = (json.loads(e.body) for e in events)
    assert (no_offer["outcome"], no_offer["message"], no_offer["seq"]) == ("refused", "scoring", 2)
    assert (done["seq"], done["offers"], done["stub"]) == (3, 1, None)
    view = await store.get_calculation(calc.id)
    assert view is not None
    j = view.to_json()
    assert j["status"] == "closed"  # every insurer answered: nothing left to wait for
    assert [o["premium"] for o in j["offers"]] == [5000.0]
    assert (await store.load_exchanges([a]))[a].settled


async def test_deadline_completes_with_stub_and_later_answers_are_ignored(store: Store) -> None:
    calc = new_calculation(created_at=1000.0, deadline=60.0)
    await store.create_calculation(calc, queue=Q)
    assert await store.next_deadline() == 1060.0
    assert await store.complete_due(topic=T, now=1059.9, lease=30.0, limit=10) == []
    events = await store.complete_due(topic=T, now=1060.0, lease=30.0, limit=10)
    assert [json.loads(e.body)["type"] for e in events] == ["completed"]
    done = json.loads(events[0].body)
    assert done["offers"] == 0
    assert done["stub"] == calc.stub
    a = calc.exchanges[0].correlation_id
    assert await store.settle_exchange(a, offer(1061.0), topic=T, now=1061.0, lease=30.0) == []
    view = await store.get_calculation(calc.id)
    assert view is not None
    assert [e.status for e in view.exchanges] == ["timed_out", "timed_out"]
    assert view.to_json()["stub"] == calc.stub
    assert await store.next_deadline() is None
    assert await store.complete_due(topic=T, now=2000.0, lease=30.0, limit=10) == []


async def test_deadline_republishes_unsent_offers_before_completed(store: Store) -> None:
    calc = new_calculation()
    await store.create_calculation(calc, queue=Q)
    await store.settle_exchange(
        calc.exchanges[0].correlation_id, offer(1010.0), topic=T, now=1010.0, lease=300.0
    )  # leased, never marked sent
    events = await store.complete_due(topic=T, now=1060.0, lease=30.0, limit=10)
    assert [json.loads(e.body)["type"] for e in events] == ["offer", "completed"]
    assert json.loads(events[1].body)["offers"] == 1


async def test_completion_sends_unsent_offers_of_others_first(store: Store) -> None:
    calc = new_calculation()
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    first = await store.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
    # `a`'s task has not published yet when `b` completes the calculation:
    last = await store.settle_exchange(b, offer(1010.0, 7.0), topic=T, now=1010.0, lease=30.0)
    assert [(json.loads(e.body)["type"], json.loads(e.body)["seq"]) for e in last] == [
        ("offer", 1),
        ("offer", 2),
        ("completed", 3),
    ]
    assert last[0].id == first[0].id


async def test_late_answers_are_shown_marked_late_until_the_calculation_closes(
    store: Store,
) -> None:
    calc = replace(new_calculation(created_at=1000.0, deadline=60.0), closes_at=1180.0)
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    done = await store.complete_due(topic=T, now=1060.0, lease=30.0, limit=10)
    assert [json.loads(e.body)["offers"] for e in done] == [0]
    assert await store.next_deadline() == 1180.0
    late = await store.settle_exchange(a, offer(1100.0), topic=T, now=1100.0, lease=30.0)
    event = json.loads(late[0].body)
    assert (event["type"], event["late"], event["seq"]) == ("offer", True, 2)
    view = await store.get_calculation(calc.id)
    assert view is not None
    j = view.to_json()
    assert j["status"] == "completed"
    assert [o["late"] for o in j["offers"]] == [True]
    assert j["stub"] == calc.stub  # no offer came in time
    assert await store.complete_due(topic=T, now=1180.0, lease=30.0, limit=10) == []
    assert await store.settle_exchange(b, offer(1181.0), topic=T, now=1181.0, lease=30.0) == []
    closed = await store.get_calculation(calc.id)
    assert closed is not None
    assert closed.to_json()["status"] == "closed"
    assert [e.status for e in closed.exchanges] == ["offer", "timed_out"]
    assert (await store.load_exchanges([b]))[b].settled
    assert await store.next_deadline() is None


async def test_an_answer_after_the_deadline_completes_first(store: Store) -> None:
    calc = replace(new_calculation(created_at=1000.0, deadline=60.0), closes_at=1180.0)
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    await store.mark_sent(
        [
            m.id
            for m in await store.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
        ],
        now=1010.0,
    )
    # The keeper has not run yet when b's answer arrives just after the deadline.
    events = await store.settle_exchange(b, offer(1060.5), topic=T, now=1060.5, lease=30.0)
    bodies = [json.loads(e.body) for e in events]
    assert [(e["type"], e.get("late")) for e in bodies] == [("completed", None), ("offer", True)]
    assert bodies[0]["offers"] == 1


async def test_answers_settled_together_plan_each_on_the_last_and_hand_a_calculation_to_one(
    store: Store,
) -> None:
    one, two = new_calculation(), new_calculation()
    for calc in (one, two):
        await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in one.exchanges)
    c, _ = (x.correlation_id for x in two.exchanges)
    unknown = uuid.uuid4()
    answers = [(a, offer(1010.0)), (c, offer(1010.0, 7.0)), (unknown, offer(1010.0))]
    answers += [(a, offer(1010.0, 1.0)), (b, offer(1010.0, 6000.0))]  # a twice: first counts

    settled = await store.settle_exchanges(answers, topic=T, now=1010.0, lease=30.0)

    # One calculation's events go to its last answer, in order (completed last): published
    # by one caller, so none goes out twice; the unknown answer gets no entry.
    assert set(settled) == {a, b, c}
    assert all(x.stored for x in settled.values())
    events = {cid: x.events for cid, x in settled.items()}
    assert events[a] == []
    kinds = [(json.loads(e.body)["type"], json.loads(e.body)["seq"]) for e in events[b]]
    assert kinds == [("offer", 1), ("offer", 2), ("completed", 3)]
    assert [json.loads(e.body)["premium"] for e in events[b][:2]] == [5000.0, 6000.0]
    assert [json.loads(e.body)["seq"] for e in events[c]] == [1]
    view = await store.get_calculation(one.id)
    assert view is not None
    assert view.completed_at == 1010.0
    premiums = [x.outcome.premium for x in view.exchanges if x.outcome is not None]
    assert premiums == [5000.0, 6000.0]
    assert await store.settle_exchanges([], topic=T, now=1011.0, lease=30.0) == {}


async def test_a_settle_says_which_answers_it_stored(store: Store) -> None:
    """A repeat (and an answer for a closed calculation: every one of its answers is in) is
    reported as not stored; its calculation's events still go to it when it is the last of
    the batch."""
    calc = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora", "borealis"))
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    await store.settle_exchanges([(a, offer(1010.0))], topic=T, now=1010.0, lease=30.0)

    settled = await store.settle_exchanges(
        [(b, offer(1011.0)), (a, offer(1011.0, 1.0))], topic=T, now=1011.0, lease=30.0
    )

    assert (settled[b].stored, settled[a].stored) == (True, False)
    assert settled[b].events == []  # a is the batch's last of this calculation
    kinds = [json.loads(e.body)["type"] for e in settled[a].events]
    assert kinds == ["offer", "offer", "completed"]  # the completion flushes a's, unsent
    closed = await store.settle_exchanges(
        [(b, offer(1012.0, 2.0))], topic=T, now=1012.0, lease=30.0
    )
    assert closed[b].stored is False
    assert closed[b].events == []


async def test_a_store_knows_the_exchanges_of_what_it_created(store: Store) -> None:
    """Without a read: the creating store's calculation, insurer and settled flag (which may
    lag another store's settle, never lead it); None for what it does not know."""
    calc = new_calculation(created_at=1000.0, deadline=60.0, insurers=("aurora", "borealis"))
    await store.create_calculation(calc, queue=Q)
    a, b = (x.correlation_id for x in calc.exchanges)
    assert store.known_exchange(a) == KnownExchange(calc.id, "aurora", False)
    assert store.known_exchange(uuid.uuid4()) is None

    await store.settle_exchanges([(a, offer(1010.0))], topic=T, now=1010.0, lease=30.0)

    assert store.known_exchange(a) == KnownExchange(calc.id, "aurora", True)
    assert store.known_exchange(b) == KnownExchange(calc.id, "borealis", False)


async def test_racing_settles_and_the_keeper_give_one_event_each_in_one_order(
    store: Store,
) -> None:
    """Every exchange of a calculation answered at once, each twice, from its own task, while
    the keeper completes it: each insurer's event is stored once, seqs run 1..n without gap
    or repeat, one ``completed``, and the calculation ends closed with every answer kept."""
    codes = ("aurora", "borealis", "cedar", "delta", "ember", "fjord", "granite", "harbor")
    calc = new_calculation(insurers=codes, created_at=1000.0, deadline=60.0)
    calc = replace(calc, closes_at=1120.0)
    await store.create_calculation(calc, queue=Q)
    ids = [x.correlation_id for x in calc.exchanges]

    async def answer(i: int, copy: int) -> None:
        # Half of them land after the deadline: those race the keeper's completion.
        now = 1059.0 + i * 0.25 + copy * 0.01
        await store.settle_exchanges(
            [(ids[i], offer(now, 1000.0 + i))], topic=T, now=now, lease=30.0
        )

    async with trio.open_nursery() as nursery:
        for copy in (0, 1):
            for i in range(len(ids)):
                nursery.start_soon(answer, i, copy)
        nursery.start_soon(partial(store.complete_due, topic=T, now=1060.0, lease=30.0, limit=9))

    events = [json.loads(o.body) for o in await store.outbox_of(calc.id) if o.destination == T]
    assert sorted(e["seq"] for e in events) == list(range(1, len(ids) + 2))
    assert sorted(e["insurer"] for e in events if e["type"] == "offer") == sorted(codes)
    assert [e["type"] for e in events].count("completed") == 1
    view = await store.get_calculation(calc.id)
    assert view is not None
    assert view.to_json()["status"] == "closed"
    premiums = {x.insurer: x.outcome.premium for x in view.exchanges if x.outcome is not None}
    assert premiums == {code: 1000.0 + i for i, code in enumerate(codes)}
