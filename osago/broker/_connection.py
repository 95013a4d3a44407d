"""One STOMP 1.2 connection over a Trio TCP stream: handshake, reader, heart-beats, receipts.

Transport and protocol errors become :class:`BrokerUnavailable` / :class:`BrokerProtocolError`
here. The connection never reconnects itself; :mod:`osago.broker.stomp` does that.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress

import trio
from stomp.utils import calculate_heartbeats

from osago.broker._framing import Frame, FrameParser, encode_frame
from osago.broker._port import Outgoing
from osago.errors import BrokerError, BrokerProtocolError, BrokerUnavailable

__all__ = ["WRITE_TIMEOUT", "StompConnection", "open_stomp_connection"]

log = logging.getLogger("osago.broker")

# The longest one write may take (seconds: a broker that has stopped reading) before the
# connection is given up; a write is never cut short by its caller's cancellation (_write).
WRITE_TIMEOUT = 10.0

_generations = itertools.count(1)


class _Receipt:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BrokerError | None = None

    async def answered(self) -> None:
        """Wait for the broker's answer; raise the error it answered with."""
        await self.done.wait()
        if self.error is not None:
            raise self.error


class StompConnection:
    """A live connection. ``on_message(frame, generation)`` receives every MESSAGE frame."""

    def __init__(self, stream: trio.abc.Stream, on_message: Callable[[Frame, int], None]) -> None:
        self.generation = next(_generations)
        self._stream = stream
        self._on_message = on_message
        self._send_lock = trio.Lock()  # fair: writers take turns in the order they came
        self._unsent: list[bytes] = []  # queued by writers while another one was sending
        self._queued = 0  # writes queued so far (the last one's number)
        self._sent = 0  # writes sent so far, in order
        self._receipts: dict[str, _Receipt] = {}
        self._commits: set[str] = set()  # receipt ids of batches' COMMITs not yet answered
        self._ids = itertools.count(1)
        self.dead = trio.Event()
        self.error: BrokerError | None = None
        self._last_received = trio.current_time()

    def _fail(self, error: BrokerError) -> None:
        if self.error is None:
            self.error = error
        for r in self._receipts.values():
            r.error = self.error
            r.done.set()
        self._receipts.clear()
        self._commits.clear()
        self.dead.set()

    async def _write(self, data: bytes) -> None:
        """Write ``data`` after everything written before it.

        Why frames are coalesced: under load many tasks write at once (the acks and event
        publishes of a settled batch, a notifier's acks). Each ``send_all`` is a syscall that
        wakes the broker's reader; so a writer that finds the stream busy queues its bytes,
        and whoever sends next sends everything queued so far in one write. A writer that
        finds it idle sends at once: no write waits for company.
        """
        if self.error is not None:
            raise BrokerUnavailable(f"connection lost: {self.error}")
        self._unsent.append(data)
        self._queued += 1
        mine = self._queued
        async with self._send_lock:
            if self._sent >= mine:
                return  # the writer before us sent ours with its own
            if self.error is not None:
                raise BrokerUnavailable(f"connection lost: {self.error}")
            # A writer cancelled before it sends leaves the queue (its bytes too) to the next.
            await trio.lowlevel.checkpoint_if_cancelled()
            chunks, self._unsent = self._unsent, []
            upto = self._queued
            # Why shielded: once a write begins, part of a frame may be out; cut there, the
            # stream is garbage and every job unacked on this connection comes back. A caller
            # cancelled meanwhile (its exchange's scope, a publish's bound) sees it at its
            # next checkpoint, after its frame. Only a write that cannot complete in
            # WRITE_TIMEOUT ends the connection. (Under a surge the api's 2 s bound on a
            # stats request cut its writes: 8 connections lost in a minute, `bench/capacity.py
            # --rates 70` with prefetch 2000.)
            deadline = trio.current_time() + WRITE_TIMEOUT
            try:
                with trio.CancelScope(shield=True, deadline=deadline) as scope:
                    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._fail(BrokerUnavailable(f"send failed: {exc!r}"))
                raise BrokerUnavailable(f"send failed: {exc!r}") from exc
            except BaseException:
                self._fail(BrokerUnavailable("a write was interrupted"))
                raise
            if scope.cancelled_caught:
                error = BrokerUnavailable(f"a write did not complete in {WRITE_TIMEOUT:g}s")
                self._fail(error)
                raise error
            self._sent = upto

    async def send_frame(self, cmd: str, headers: dict[str, str], body: bytes = b"") -> None:
        """Write one frame without waiting for a receipt (ACK, NACK, heart-beat-free frames)."""
        await self._write(encode_frame(cmd, headers, body))

    async def request(self, frames: Sequence[tuple[str, dict[str, str], bytes]]) -> None:
        """Write frames in one batch, each with a receipt, and wait for every receipt.

        Why receipts: a SEND is durable on the broker only once its RECEIPT arrives
        (unreceipted sends were lost on broker kill -9). Pipelining them keeps throughput.
        """
        waits = []
        data = []
        for cmd, headers, body in frames:
            rid, receipt = self._expect()
            waits.append(receipt)
            data.append(encode_frame(cmd, {**headers, "receipt": rid}, body))
        await self._write(b"".join(data))
        for receipt in waits:
            await receipt.answered()

    def _expect(self) -> tuple[str, _Receipt]:
        """A new receipt id, and what its RECEIPT (or ERROR) will set."""
        rid = f"r{self.generation}-{next(self._ids)}"
        receipt = self._receipts[rid] = _Receipt()
        return rid, receipt

    async def send_messages(self, messages: Sequence[Outgoing]) -> None:
        """Persistent SENDs, durable when this returns; several go in one transaction.

        Why a transaction: ActiveMQ writes a transaction's messages to its journal at the
        COMMIT, in one write, where each plain persistent SEND is a write of its own that
        its RECEIPT waits for (a POST's ten jobs were ten).

        Why only the COMMIT asks for a receipt: a SEND with a receipt is a synchronous
        command to ActiveMQ, one it answers with a frame of its own. Without, a batch of
        ten cost the broker 1.05 ms of CPU instead of 2.2-2.4, and us 0.47 instead of 1.1
        (``bench/stomp_batches.py``). Nothing is lost by it:
        - A SEND the broker refuses inside a transaction marks the transaction rollback-only
          (``rollbackOnlyOnAsyncException``, on by default), so the COMMIT fails, with its
          receipt, and the whole batch with it.
        - A SEND refused as its frame is read (a ProtocolException) is answered with an ERROR
          that names no receipt, and the transaction would commit without it. So an ERROR
          that names no receipt fails every batch still waiting on this connection
          (``_dispatch``). It may be about something else (a stale ACK, or the broker's
          late report of a refusal whose COMMIT already failed): the caller then sends the
          batch again, and consumers drop the repeats, as they do after any resend.
        - A refusal that ActiveMQ deems fatal closes the connection, which fails the batch.
        """
        if len(messages) == 1:
            m = messages[0]
            send = {**m.headers, "destination": m.destination, "persistent": "true"}
            await self.request([("SEND", send, m.body)])
            return
        tx = {"transaction": f"t{self.generation}-{next(self._ids)}"}
        sends = [encode_frame("BEGIN", tx)]
        sends.extend(
            encode_frame(
                "SEND",
                {**m.headers, "destination": m.destination, "persistent": "true", **tx},
                m.body,
            )
            for m in messages
        )
        rid, receipt = self._expect()
        self._commits.add(rid)
        try:
            sends.append(encode_frame("COMMIT", {**tx, "receipt": rid}))
            await self._write(b"".join(sends))
            await receipt.answered()
        finally:
            self._receipts.pop(rid, None)
            self._commits.discard(rid)

    async def _reader(self) -> None:
        parser = FrameParser()
        try:
            while True:
                data = await self._stream.receive_some(65536)
                if not data:
                    raise BrokerUnavailable("broker closed the connection")
                self._last_received = trio.current_time()
                parser.feed(data)
                for frame in parser:
                    self._dispatch(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(BrokerUnavailable(f"receive failed: {exc!r}"))
        except BrokerError as exc:
            self._fail(exc)

    def _dispatch(self, frame: Frame) -> None:
        if frame.cmd == "MESSAGE":
            self._on_message(frame, self.generation)
        elif frame.cmd == "RECEIPT":
            receipt = self._receipts.pop(frame.headers.get("receipt-id", ""), None)
            if receipt is not None:
                receipt.done.set()
        elif frame.cmd == "ERROR":
            body = frame.body.decode("utf-8", "replace").strip()
            error = BrokerProtocolError(frame.headers.get("message", "ERROR frame"), body)
            # Why the connection stays: the broker closes it when an error is fatal (the
            # reader then sees it end), and ActiveMQ keeps it after refusing one frame (an
            # ACK for a message it already redelivered, an unknown subscription). Tearing it
            # down would send every unacked message of every consumer round again.
            log.warning("broker refused a frame: %s", error)
            if "receipt-id" in frame.headers:  # it answers one request: that request fails
                receipt = self._receipts.pop(frame.headers["receipt-id"], None)
                if receipt is not None:  # (None: one a batch's guard below already failed)
                    receipt.error = error
                    receipt.done.set()
            else:  # it may be about a SEND inside a batch: every waiting batch fails
                for rid in self._commits:
                    waiting = self._receipts.pop(rid, None)
                    if waiting is not None:
                        waiting.error = error
                        waiting.done.set()
                self._commits.clear()

    async def _heartbeats(self, send_every: float, expect_every: float) -> None:
        """Send EOLs every ``send_every``; declare the broker dead after 2 silent periods."""
        next_send = trio.current_time() + send_every if send_every else float("inf")
        while True:
            deadline = self._last_received + 2 * expect_every if expect_every else float("inf")
            await trio.sleep_until(min(next_send, deadline))
            now = trio.current_time()
            if expect_every and now >= self._last_received + 2 * expect_every:
                self._fail(BrokerUnavailable(f"no heart-beat for {now - self._last_received:.1f}s"))
                return
            if now >= next_send:
                next_send += send_every
                try:
                    await self._write(b"\n")
                except BrokerUnavailable:
                    return


async def _handshake(
    stream: trio.abc.Stream,
    host: str,
    login: str | None,
    passcode: str | None,
    heartbeat: float,
    client_id: str | None,
) -> tuple[float, float]:
    ms = int(heartbeat * 1000)
    headers = {"accept-version": "1.2", "host": host, "heart-beat": f"{ms},{ms}"}
    if client_id is not None:
        headers["client-id"] = client_id
    if login is not None:
        headers["login"] = login
        headers["passcode"] = passcode or ""
    await stream.send_all(encode_frame("CONNECT", headers))
    parser = FrameParser()
    while True:
        data = await stream.receive_some(65536)
        if not data:
            raise BrokerUnavailable("broker closed the connection during CONNECT")
        parser.feed(data)
        for frame in parser:
            if frame.cmd == "ERROR":
                raise BrokerProtocolError(
                    frame.headers.get("message", "CONNECT refused"),
                    frame.body.decode("utf-8", "replace"),
                )
            if frame.cmd != "CONNECTED":
                raise BrokerProtocolError("unexpected frame during CONNECT", frame.cmd)
            server = tuple(int(x) for x in frame.headers.get("heart-beat", "0,0").split(","))
            send_ms, recv_ms = calculate_heartbeats(server, (ms, ms))
            return send_ms / 1000, recv_ms / 1000


@asynccontextmanager
async def open_stomp_connection(
    host: str,
    port: int,
    *,
    on_message: Callable[[Frame, int], None],
    login: str | None = None,
    passcode: str | None = None,
    heartbeat: float = 4.0,
    cleanup_timeout: float = 3.0,
    client_id: str | None = None,
) -> AsyncIterator[StompConnection]:
    """Connect, negotiate heart-beats, run the reader; DISCONNECT cleanly on exit."""
    try:
        stream = await trio.open_tcp_stream(host, port)  # Trio sets TCP_NODELAY
    except OSError as exc:
        raise BrokerUnavailable(f"cannot connect to {host}:{port}: {exc}") from exc
    async with stream:
        try:
            with trio.fail_after(10):
                send_every, expect_every = await _handshake(
                    stream, host, login, passcode, heartbeat, client_id
                )
        except (trio.BrokenResourceError, OSError, trio.TooSlowError) as exc:
            raise BrokerUnavailable(f"CONNECT to {host}:{port} failed: {exc!r}") from exc
        conn = StompConnection(stream, on_message)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn._reader)
            nursery.start_soon(conn._heartbeats, send_every, expect_every)
            try:
                yield conn
            finally:
                if conn.error is None:
                    with (
                        trio.CancelScope(shield=True),
                        trio.move_on_after(cleanup_timeout),
                        suppress(BrokerError),
                    ):
                        await conn.request([("DISCONNECT", {}, b"")])
                conn._fail(BrokerUnavailable("connection closed"))
                nursery.cancel_scope.cancel()
