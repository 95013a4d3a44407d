"""The STOMP connection's writes: frames written at once go out together, in order, or fail
together; a batch of sends is one transaction."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from osago.broker import Outgoing
from osago.broker._connection import WRITE_TIMEOUT, StompConnection
from osago.broker._framing import Frame, FrameParser
from osago.errors import BrokerProtocolError, BrokerUnavailable


class _Wire(trio.abc.Stream):
    """A socket-like stream: each send_all is one write, then a checkpoint."""

    def __init__(self, *, broken: bool = False) -> None:
        self.writes: list[bytes] = []
        self.broken = broken
        self.full: trio.Event | None = None  # set: the socket's buffer is full until it is set

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.broken:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("peer gone")
        if self.full is not None:  # half the bytes out, the rest when the broker reads
            half = len(data) // 2
            self.writes.append(bytes(data[:half]))
            await self.full.wait()
            self.writes.append(bytes(data[half:]))
            return
        self.writes.append(bytes(data))
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _acked(wire: _Wire) -> list[str]:
    parser = FrameParser()
    parser.feed(b"".join(wire.writes))
    return [f.headers["id"] for f in parser]


def _connection(wire: _Wire) -> StompConnection:
    def on_message(*_: Any) -> None:
        raise AssertionError

    return StompConnection(wire, on_message)


async def test_frames_written_at_once_go_out_in_few_writes_each_once() -> None:
    wire = _Wire()
    conn = _connection(wire)
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(conn.send_frame, "ACK", {"id": str(i)})
    assert sorted(_acked(wire), key=int) == [str(i) for i in range(20)]
    # The first writer sends its own frame; the others queue behind it and go out together.
    assert len(wire.writes) <= 3


async def test_a_writer_that_finds_the_stream_idle_sends_at_once() -> None:
    wire = _Wire()
    conn = _connection(wire)
    for i in range(5):
        await conn.send_frame("ACK", {"id": str(i)})
        assert len(wire.writes) == i + 1
    assert _acked(wire) == ["0", "1", "2", "3", "4"]


async def test_when_a_write_fails_every_writer_queued_with_it_fails() -> None:
    wire = _Wire(broken=True)
    conn = _connection(wire)
    failed: list[int] = []

    async def ack(i: int) -> None:
        with pytest.raises(BrokerUnavailable):
            await conn.send_frame("ACK", {"id": str(i)})
        failed.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(ack, i)
    assert sorted(failed) == [0, 1, 2, 3, 4]
    assert conn.dead.is_set()
    assert wire.writes == []


async def test_a_writer_cancelled_mid_frame_finishes_it_and_the_connection_lives() -> None:
    """Cancelling a writer whose frame is half out must not cut the stream (every job
    unacked on the connection would come back): the frame is finished, then the caller
    sees its cancellation."""
    wire = _Wire()
    wire.full = trio.Event()
    conn = _connection(wire)
    caller = trio.CancelScope()
    outcome: list[str] = []

    async def writer() -> None:
        with caller:
            await conn.send_frame("ACK", {"id": "1"})
            outcome.append("sent")
            await trio.lowlevel.checkpoint()
        outcome.append("cancelled" if caller.cancelled_caught else "not cancelled")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()  # half its frame out, the buffer full
        caller.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == []  # still writing: the cancel waits for the frame
        wire.full.set()  # the broker reads
    assert outcome == ["sent", "cancelled"]
    assert _acked(wire) == ["1"]  # the whole frame
    assert conn.error is None


async def test_a_write_not_done_in_the_write_timeout_ends_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wire = _Wire()
    wire.full = trio.Event()  # never set
    conn = _connection(wire)
    with pytest.raises(BrokerUnavailable, match="did not complete"):
        await conn.send_frame("ACK", {"id": "1"})
    assert trio.current_time() == pytest.approx(WRITE_TIMEOUT)
    assert conn.dead.is_set()


@pytest.mark.parametrize("count", [1, 3])
async def test_a_batch_of_sends_is_one_transaction_a_single_send_is_plain(count: int) -> None:
    """Why: ActiveMQ writes a transaction's messages at its COMMIT in one journal write,
    where each plain persistent SEND is a write its RECEIPT waits for."""
    wire = _Wire()
    conn = _connection(wire)
    batch = [Outgoing("/queue/q", f"m{i}".encode(), {"h": "v"}) for i in range(count)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.send_messages, batch)
        await trio.testing.wait_all_tasks_blocked()
        parser = FrameParser()
        parser.feed(b"".join(wire.writes))
        frames = list(parser)
        asked = [f for f in frames if "receipt" in f.headers]
        for f in asked:
            conn._dispatch(Frame("RECEIPT", {"receipt-id": f.headers["receipt"]}, b""))
    sends = [f for f in frames if f.cmd == "SEND"]
    assert [(f.body, f.headers["persistent"], f.headers["h"]) for f in sends] == [
        (m.body, "true", "v") for m in batch
    ]
    if count == 1:
        assert [f.cmd for f in frames] == ["SEND"]
        assert "transaction" not in sends[0].headers
    else:
        assert [f.cmd for f in frames] == ["BEGIN", "SEND", "SEND", "SEND", "COMMIT"]
        assert len({f.headers["transaction"] for f in frames}) == 1
    # A single SEND and a batch's COMMIT ask for a receipt; a batch's SENDs do not.
    assert [f.cmd for f in asked] == ["SEND" if count == 1 else "COMMIT"]


async def _waiting_batch(conn: StompConnection, wire: _Wire, nursery: trio.Nursery) -> list[Any]:
    """Start a batch of two SENDs; return [the error it raised] once it ends, else []."""
    raised: list[Any] = []

    async def send() -> None:
        try:
            await conn.send_messages([Outgoing("/queue/q", b"a", {}), Outgoing("/queue/q", b"b")])
        except BrokerProtocolError as exc:
            raised.append(exc)

    nursery.start_soon(send)
    await trio.testing.wait_all_tasks_blocked()
    return raised


def _commit_receipt(wire: _Wire) -> str:
    parser = FrameParser()
    parser.feed(b"".join(wire.writes))
    return [f for f in parser if f.cmd == "COMMIT"][-1].headers["receipt"]


async def test_an_error_that_names_no_receipt_fails_the_batches_waiting() -> None:
    """A SEND ActiveMQ refuses as it reads the frame is answered by an ERROR without a
    receipt id, and its transaction commits without it: the batch must not succeed."""
    wire = _Wire()
    conn = _connection(wire)
    async with trio.open_nursery() as nursery:
        failed = await _waiting_batch(conn, wire, nursery)
        commit = _commit_receipt(wire)
        conn._dispatch(Frame("ERROR", {"message": "SEND received without a Destination"}, b""))
        conn._dispatch(Frame("RECEIPT", {"receipt-id": commit}, b""))  # late: ignored
        await trio.testing.wait_all_tasks_blocked()
        assert [str(e) for e in failed] == ["SEND received without a Destination"]
        # The next batch is not failed by it; its COMMIT's receipt ends it.
        ok = await _waiting_batch(conn, wire, nursery)
        conn._dispatch(Frame("RECEIPT", {"receipt-id": _commit_receipt(wire)}, b""))
    assert ok == []
    assert not conn.dead.is_set()
