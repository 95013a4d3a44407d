"""Our STOMP client survives an ActiveMQ restart: it reconnects, resubscribes, resends."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from osago.broker import Outgoing, open_stomp_broker
from tests.conftest import STOMP_URL

pytestmark = pytest.mark.integration

SCRIPT = str(Path(__file__).resolve().parents[2] / "scripts" / "activemq.sh")


async def test_reconnect_resubscribe_and_send_across_a_broker_restart(unique: str) -> None:
    q = f"/queue/test.restart.{unique}"
    async with (
        open_stomp_broker(STOMP_URL, heartbeat=1.0) as broker,
        broker.subscribe(q) as sub,
    ):
        await broker.send([Outgoing(q, b"before")])
        with trio.fail_after(5):
            first = await sub.__aiter__().__anext__()
        await sub.ack(first)

        await trio.run_process([SCRIPT, "stop"])
        # A send while the broker is down waits for the reconnect, then goes through.
        async with trio.open_nursery() as n:
            n.start_soon(broker.send, [Outgoing(q, b"during")])
            await trio.sleep(0.5)
            await trio.run_process([SCRIPT, "start"])

        with trio.fail_after(20):
            again = await sub.__aiter__().__anext__()
        await sub.ack(again)
    assert (first.body, again.body) == (b"before", b"during")
    assert broker.connections >= 2


_SUBSCRIBER = """
import sys, trio
from osago.broker import open_stomp_broker

async def main(url, topic, client_id):
    async with open_stomp_broker(url, client_id=client_id) as broker:
        async with broker.subscribe(topic, durable="results"):
            print("subscribed", flush=True)
            await trio.sleep_forever()

trio.run(main, *sys.argv[1:])
"""


async def test_a_durable_topic_subscription_keeps_what_is_published_while_its_client_is_away(
    unique: str,
) -> None:
    """Issue 11: a notifier's plain topic subscription lost everything workers published
    while it reconnected (over a broker restart 11-12 of 20 calculations never completed).
    Here its connection dies hard (kill -9), events are published, and the same client id
    resubscribing gets every one, in order."""
    topic = f"/topic/test.durable.{unique}"
    client_id = f"test-{unique}"
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-c", _SUBSCRIBER, STOMP_URL, topic, client_id],
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stdout is not None
        with trio.fail_after(10):
            assert b"subscribed" in await process.stdout.receive_some()
        process.kill()
    async with open_stomp_broker(STOMP_URL) as worker:
        await worker.send([Outgoing(topic, f"event {i}".encode()) for i in range(20)])
    got = []
    async with (
        open_stomp_broker(STOMP_URL, client_id=client_id) as notifier,
        notifier.subscribe(topic, durable="results", prefetch=100) as sub,
    ):
        with trio.fail_after(10):
            async for delivery in sub:
                got.append(delivery.body)
                await sub.ack(delivery)
                if len(got) == 20:
                    break
    assert got == [f"event {i}".encode() for i in range(20)]


async def test_a_list_of_brokers_is_tried_in_turn(unique: str) -> None:
    q = f"/queue/test.failover.{unique}"
    for url in (
        f"stomp://127.0.0.1:1,{STOMP_URL}",
        f"failover:(stomp://127.0.0.1:1,{STOMP_URL})?randomize=false",
    ):
        async with open_stomp_broker(url) as broker, broker.subscribe(q) as sub:
            await broker.send([Outgoing(q, url.encode())])
            with trio.fail_after(5):
                got = await sub.receive()
            await sub.ack(got)
            assert got.body == url.encode()
