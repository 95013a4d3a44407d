"""An ERROR frame fails the frame it answers, not the connection (issue 11)."""

from __future__ import annotations

import pytest
import trio

from osago.broker import Outgoing
from osago.broker._connection import open_stomp_connection
from osago.broker._framing import Frame
from osago.errors import BrokerProtocolError

pytestmark = pytest.mark.integration


class _Inbox:
    """The bodies of the MESSAGE frames a connection receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._arrived = trio.Event()

    def on_message(self, frame: Frame, _: int) -> None:
        self.bodies.append(frame.body)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[bytes]:
        with trio.fail_after(5):
            while len(self.bodies) < count:
                self._arrived = trio.Event()
                await self._arrived.wait()
        return self.bodies


async def test_a_refused_frame_leaves_the_connection_and_its_subscriptions_up(
    unique: str,
) -> None:
    inbox = _Inbox()
    q = f"/queue/test.errors.{unique}"
    async with open_stomp_connection("127.0.0.1", 61613, on_message=inbox.on_message) as conn:
        await conn.request([("SUBSCRIBE", {"id": "s1", "destination": q, "ack": "auto"}, b"")])
        # ActiveMQ answers these with ERROR and keeps the connection; we used to drop it,
        # and every consumer's unacked messages went round again.
        await conn.send_frame("ACK", {"id": "no-such-ack"})
        with pytest.raises(BrokerProtocolError, match="No subscription matched"):
            await conn.request([("UNSUBSCRIBE", {"id": "no-such-subscription"}, b"")])
        await conn.request([("SEND", {"destination": q, "persistent": "true"}, b"after")])
        assert await inbox.wait_for(1) == [b"after"]
        assert not conn.dead.is_set()


async def test_a_batch_goes_in_one_transaction_and_a_refused_send_fails_all_of_it(
    unique: str,
) -> None:
    inbox = _Inbox()
    q = f"/queue/test.tx.{unique}"
    batch = [Outgoing(q, f"m{i}".encode(), {}) for i in range(3)]
    async with open_stomp_connection("127.0.0.1", 61613, on_message=inbox.on_message) as conn:
        await conn.request([("SUBSCRIBE", {"id": "s1", "destination": q, "ack": "auto"}, b"")])
        await conn.send_messages(batch)
        assert await inbox.wait_for(3) == [b"m0", b"m1", b"m2"]
        # A SEND the broker refuses inside the batch fails the call: the caller keeps every
        # row of it for the relay, as it did when each SEND went alone.
        refused = [batch[0], Outgoing("/remote-temp-queue/gone", b"bad", {}), batch[2]]
        with pytest.raises(BrokerProtocolError):
            await conn.send_messages(refused)
        assert not conn.dead.is_set()


async def test_a_send_the_broker_refuses_rolls_its_whole_batch_back(unique: str) -> None:
    """Only a batch's COMMIT asks for a receipt. What makes that safe: ActiveMQ marks the
    transaction of a refused SEND rollback-only, so none of the batch is delivered."""
    inbox = _Inbox()
    q = f"/queue/test.tx.{unique}"
    refused = [Outgoing(q, b"a", {}), Outgoing("/remote-temp-queue/gone", b"bad", {})]
    stomp = ("127.0.0.1", 61613)
    async with open_stomp_connection(*stomp, on_message=inbox.on_message) as consumer:
        await consumer.request([("SUBSCRIBE", {"id": "s1", "destination": q, "ack": "auto"}, b"")])
        async with open_stomp_connection(*stomp, on_message=inbox.on_message) as conn:
            with pytest.raises(BrokerProtocolError):
                await conn.send_messages([*refused, Outgoing(q, b"b", {})])
        # (From another connection: ActiveMQ may report the refusal once more, naming no
        # receipt, and on that one it would fail whatever batch is waiting then.)
        async with open_stomp_connection(*stomp, on_message=inbox.on_message) as conn:
            await conn.send_messages([Outgoing(q, b"c", {}), Outgoing(q, b"d", {})])
        assert await inbox.wait_for(2) == [b"c", b"d"]  # a and b would have come first
