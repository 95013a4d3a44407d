"""Our STOMP client survives an ActiveMQ restart: it reconnects, resubscribes, resends."""

from __future__ import annotations

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
