"""One contract for the Broker port, run against the memory twin and real ActiveMQ."""

from __future__ import annotations

import trio

from osago.broker import Broker, Delivery, Outgoing, Subscription


async def next_delivery(sub: Subscription, within: float = 5.0) -> Delivery:
    with trio.fail_after(within):
        return await sub.receive()


async def nothing_within(sub: Subscription, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await sub.receive()
        return False
    return True


async def test_queue_message_goes_to_exactly_one_consumer(broker: Broker, unique: str) -> None:
    q = f"/queue/test.one.{unique}"
    async with broker.subscribe(q, prefetch=10) as a, broker.subscribe(q, prefetch=10) as b:
        await broker.send([Outgoing(q, f"m{i}".encode()) for i in range(20)])
        got: list[bytes] = []

        async def drain(sub: Subscription) -> None:
            while True:
                with trio.move_on_after(1.0):
                    d = await next_delivery(sub)
                    got.append(d.body)
                    await sub.ack(d)
                    continue
                return

        async with trio.open_nursery() as n:
            n.start_soon(drain, a)
            n.start_soon(drain, b)
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(20))


async def test_headers_and_binary_body_round_trip(broker: Broker, unique: str) -> None:
    q = f"/queue/test.hdr.{unique}"
    body = b"a\x00b\nc:d"
    async with broker.subscribe(q) as sub:
        await broker.send([Outgoing(q, body, {"calculation-id": "x:y\\z", "n": "1"})])
        d = await next_delivery(sub)
        await sub.ack(d)
    assert d.body == body
    assert d.headers["calculation-id"] == "x:y\\z"
    assert not d.redelivered


async def test_prefetch_limits_unacked_deliveries(broker: Broker, unique: str) -> None:
    q = f"/queue/test.prefetch.{unique}"
    async with broker.subscribe(q, prefetch=1) as sub:
        await broker.send([Outgoing(q, b"1"), Outgoing(q, b"2")])
        first = await next_delivery(sub)
        assert await nothing_within(sub, 0.5)
        await sub.ack(first)
        second = await next_delivery(sub)
        await sub.ack(second)
    assert (first.body, second.body) == (b"1", b"2")


async def test_queue_statistics_tell_waiting_from_in_flight(broker: Broker, unique: str) -> None:
    """The api refuses new calculations on the jobs no worker holds (osago/admission.py)."""
    q = f"/queue/test.stats.{unique}"
    await broker.send([Outgoing(q, b"1"), Outgoing(q, b"2"), Outgoing(q, b"3")])
    async with broker.subscribe(q, prefetch=1) as sub:
        first = await next_delivery(sub)
        for _ in range(50):  # ActiveMQ's figures follow the dispatch a moment later
            with trio.fail_after(5):
                stats = await broker.queue_stats(q)
            if stats is not None and stats.in_flight == 1:
                break
            await trio.sleep(0.1)
        assert stats is not None
        assert (stats.messages, stats.in_flight, stats.waiting, stats.consumers) == (3, 1, 2, 1)
        await sub.ack(first)


async def test_nack_redelivers_then_dead_letters(broker: Broker, unique: str) -> None:
    q = f"/queue/test.dlq.{unique}"
    async with broker.subscribe(q) as sub:
        await broker.send([Outgoing(q, b"poison")])
        attempts = []
        for _ in range(3):  # first delivery + 2 redeliveries
            d = await next_delivery(sub, within=10)
            attempts.append(d)
            await sub.nack(d)
        assert [a.redelivered for a in attempts] == [False, True, True]
        assert len({a.message_id for a in attempts}) == 1
        assert await nothing_within(sub, 2.5)
    async with broker.subscribe(f"/queue/DLQ.test.dlq.{unique}") as dlq:
        dead = await next_delivery(dlq, within=10)
        await dlq.ack(dead)
    assert dead.body == b"poison"
    assert dead.message_id == attempts[0].message_id


async def test_unacked_message_returns_when_consumer_leaves(broker: Broker, unique: str) -> None:
    q = f"/queue/test.leave.{unique}"
    async with broker.subscribe(q) as first:
        await broker.send([Outgoing(q, b"x")])
        taken = await next_delivery(first)
    # `first` left without acking: the message must come back, marked redelivered.
    async with broker.subscribe(q) as other:
        again = await next_delivery(other)
        await other.ack(again)
    assert taken.body == again.body == b"x"
    assert again.redelivered


async def test_topic_reaches_every_current_subscriber_only(broker: Broker, unique: str) -> None:
    t = f"/topic/test.topic.{unique}"
    await broker.send([Outgoing(t, b"before")])
    async with broker.subscribe(t) as a, broker.subscribe(t) as b:
        await broker.send([Outgoing(t, b"e1"), Outgoing(t, b"e2")])
        got_a = [(await next_delivery(a)).body for _ in range(2)]
        got_b = [(await next_delivery(b)).body for _ in range(2)]
    assert got_a == got_b == [b"e1", b"e2"]


async def test_consumers_leaving_never_dead_letter_a_message(broker: Broker, unique: str) -> None:
    """A worker that stops without acking (shutdown, crash) is not a failed attempt."""
    q = f"/queue/test.leaving.{unique}"
    await broker.send([Outgoing(q, b"job")])
    for _ in range(4):  # more than the 2 redeliveries a NACKed message gets
        async with broker.subscribe(q) as sub:
            d = await next_delivery(sub)
    async with broker.subscribe(q) as sub:
        d = await next_delivery(sub)
        await sub.ack(d)
    assert d.body == b"job"
    assert d.redelivered
    async with broker.subscribe(f"/queue/DLQ.test.leaving.{unique}") as dlq:
        assert await nothing_within(dlq, 1.0)
