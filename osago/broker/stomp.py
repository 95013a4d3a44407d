"""ActiveMQ over STOMP 1.2: our Trio client, reconnecting and resubscribing on its own.

Ack modes: queues are consumed with ``client-individual`` so each message is acked alone
after its work is stored (a crash before the ack means redelivery, never loss). A plain topic
subscription is ``auto``: it only sees what is published while it is connected. A *durable*
one (``client-id`` on CONNECT + ``activemq.subscriptionName``) is kept by the broker while we
reconnect, so nothing published meanwhile is lost; it is ``client-individual`` too, acked
once delivered to the caller's sessions, so nothing in flight at a disconnect is lost either.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import trio

from osago.broker._connection import StompConnection, open_stomp_connection
from osago.broker._framing import Frame
from osago.broker._port import Delivery, Outgoing, QueueStats, read_statistics, split_destination
from osago.broker._urls import StompAddress, parse_stomp_url
from osago.errors import BrokerError, BrokerUnavailable, ConfigError

__all__ = ["StompBroker", "open_stomp_broker"]

log = logging.getLogger("osago.broker")


@dataclass(eq=False)
class _Sub:
    broker: StompBroker
    id: str
    destination: str
    prefetch: int
    durable: str | None
    send: trio.MemorySendChannel[Delivery]
    recv: trio.MemoryReceiveChannel[Delivery]
    extra: dict[str, str] = field(default_factory=dict)  # more SUBSCRIBE headers

    @property
    def ack_mode(self) -> str:
        if self.destination.startswith("/temp-queue/"):
            return "auto"  # replies: nothing to redeliver
        queue = split_destination(self.destination)[0] == "queue"
        return "client-individual" if queue or self.durable else "auto"

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self.recv.__aiter__()

    async def receive(self) -> Delivery:
        return await self.recv.receive()

    async def ack(self, delivery: Delivery) -> None:
        if self.ack_mode != "auto":
            await self.broker.settle("ACK", delivery)

    async def nack(self, delivery: Delivery) -> None:
        if self.ack_mode != "auto":
            await self.broker.settle("NACK", delivery)

    def subscribe_frame(self) -> tuple[str, dict[str, str], bytes]:
        headers = {
            "id": self.id,
            "destination": self.destination,
            "ack": self.ack_mode,
            "activemq.prefetchSize": str(self.prefetch),
        }
        if self.durable:
            headers["activemq.subscriptionName"] = self.durable
        return "SUBSCRIBE", {**headers, **self.extra}, b""

    def unsubscribe_frame(self) -> tuple[str, dict[str, str], bytes]:
        headers = {"id": self.id}
        if self.durable:  # ends the durable subscription: the broker stops keeping messages
            headers["activemq.subscriptionName"] = self.durable
        return "UNSUBSCRIBE", headers, b""


class StompBroker:
    """The Broker port on ActiveMQ. Open with :func:`open_stomp_broker`."""

    def __init__(
        self,
        address: StompAddress,
        heartbeat: float,
        cleanup_timeout: float = 3.0,
        client_id: str | None = None,
    ) -> None:
        self._endpoints = address.endpoints
        self._at = 0  # index of the endpoint in use (or to try next)
        self._login, self._passcode = address.login, address.passcode
        self._client_id = client_id
        self._cleanup_timeout = cleanup_timeout
        self._heartbeat = heartbeat
        self._conn: StompConnection | None = None
        self._connected = trio.Event()
        self._subs: dict[str, _Sub] = {}
        self._ids = itertools.count(1)
        self.connections = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _on_message(self, frame: Frame, generation: int) -> None:
        sub = self._subs.get(frame.headers.get("subscription", ""))
        if sub is None:
            return
        h = frame.headers
        delivery = Delivery(
            destination=h.get("destination", sub.destination),
            message_id=h.get("message-id", ""),
            body=frame.body,
            headers=h,
            redelivered=h.get("redelivered") == "true",
            ack_id=h.get("ack", h.get("message-id", "")),
            generation=generation,
        )
        # Unsubscribed meanwhile: it stays unacked, so the broker redelivers it.
        with suppress(trio.ClosedResourceError):
            sub.send.send_nowait(delivery)

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Keep one connection up; resubscribe after every reconnect.

        Failover: when a broker cannot be reached or its connection is lost, the next one in
        the list is tried at once (a slave that took over a shared store, or a peer); only
        after every broker failed in a row does the client back off.
        """
        backoff = 0.1
        started = False
        failures = 0  # in a row, since the last connection that came up
        while True:
            host, port = self._endpoints[self._at]
            try:
                async with open_stomp_connection(
                    host,
                    port,
                    on_message=self._on_message,
                    login=self._login,
                    passcode=self._passcode,
                    heartbeat=self._heartbeat,
                    cleanup_timeout=self._cleanup_timeout,
                    client_id=self._client_id,
                ) as conn:
                    # Resubscribe everything, including subscriptions made while these
                    # SUBSCRIBEs were in flight (they saw no connection and sent nothing):
                    # no await between the last check and publishing the connection.
                    done: set[str] = set()
                    while pending := [s for s in self._subs.values() if s.id not in done]:
                        await conn.request([s.subscribe_frame() for s in pending])
                        done.update(s.id for s in pending)
                    self._conn = conn
                    self.connections += 1
                    self._connected.set()
                    if started:
                        log.warning(
                            "reconnected to ActiveMQ at %s:%s, %d subscriptions restored",
                            host,
                            port,
                            len(self._subs),
                        )
                    else:
                        task_status.started()
                        started = True
                    backoff, failures = 0.1, 0
                    await conn.dead.wait()
                    log.warning("lost ActiveMQ connection to %s:%s: %s", host, port, conn.error)
            except BrokerError as exc:
                failures += 1
                if not started and failures >= len(self._endpoints):
                    raise
                log.warning("ActiveMQ at %s:%s unreachable (%s)", host, port, exc)
            finally:
                self._conn = None
                if self._connected.is_set():
                    self._connected = trio.Event()
            self._at = (self._at + 1) % len(self._endpoints)
            tried_all = failures > 0 and failures % len(self._endpoints) == 0
            if tried_all or len(self._endpoints) == 1:
                await trio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 5.0)

    async def settle(self, cmd: str, delivery: Delivery) -> None:
        """ACK or NACK ``delivery`` on the connection it came on (by its ``ack`` id).

        Why not on the current one: ActiveMQ knows an ack id only on its own connection. If
        that connection is gone, the broker redelivers the message anyway (consumers are
        idempotent), so there is nothing to settle.
        """
        conn = self._conn
        if conn is None or conn.generation != delivery.generation:
            log.info("%s skipped: message %s came on a closed connection", cmd, delivery.message_id)
            return
        try:
            await conn.send_frame(cmd, {"id": delivery.ack_id})
        except BrokerUnavailable:
            log.info(
                "%s lost with the connection: message %s will be redelivered",
                cmd,
                delivery.message_id,
            )

    async def _connection(self) -> StompConnection:
        while self._conn is None:
            await self._connected.wait()
        return self._conn

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Persistent sends with receipts; on a lost connection, resend on the next one.

        A resend can duplicate a message the broker had already taken; consumers dedupe.
        The caller's cancel scope bounds how long we wait for the broker to come back.
        """
        if not messages:
            return
        for attempt in itertools.count(1):
            conn = await self._connection()
            try:
                await conn.send_messages(messages)
                return
            except BrokerUnavailable as exc:
                log.warning(
                    "send of %d messages failed (attempt %d): %s", len(messages), attempt, exc
                )
                await conn.dead.wait()

    async def queue_stats(self, queue: str) -> QueueStats | None:
        """The broker's own figures for ``queue``: ActiveMQ's statistics plugin answers a
        SEND to ``ActiveMQ.Statistics.Destination.<name>`` on its reply-to destination.
        None when the broker has no such queue (it does not answer: bound the call)."""
        name = split_destination(queue)[1]
        send, recv = trio.open_memory_channel[Delivery](1)
        reply = f"/temp-queue/osago-stats-{next(self._ids)}"
        sub = _Sub(self, f"s{next(self._ids)}", reply, 1, None, send, recv)
        sub.extra["transformation"] = "jms-map-json"  # the MapMessage reply, as JSON
        self._subs[sub.id] = sub
        try:
            conn = await self._connection()
            await conn.request([sub.subscribe_frame()])
            await conn.send_messages(
                [
                    Outgoing(
                        f"/queue/ActiveMQ.Statistics.Destination.{name}", b"", {"reply-to": reply}
                    )
                ]
            )
            answer = await recv.receive()
        finally:
            await self._drop(sub)
        return read_statistics(answer.body)

    async def browse(self, queue: str) -> list[Delivery]:
        """Every message waiting on ``queue``, left in place (ActiveMQ's queue browser: a
        subscription with ``browser: true`` that ends with a ``browser: end`` frame)."""
        split_destination(queue)
        send, recv = trio.open_memory_channel[Delivery](float("inf"))
        sub = _Sub(self, f"s{next(self._ids)}", queue, 1000, None, send, recv)
        sub.extra.update(browser="true", ack="auto")
        self._subs[sub.id] = sub
        found = []
        try:
            conn = await self._connection()
            await conn.request([sub.subscribe_frame()])
            async for delivery in recv:
                if delivery.headers.get("browser") == "end":
                    break
                found.append(delivery)
        finally:
            await self._drop(sub)
        return found

    async def _drop(self, sub: _Sub) -> None:
        """Forget ``sub`` here and, shielded and bounded, on the broker."""
        del self._subs[sub.id]
        sub.send.close()
        conn = self._conn
        if conn is not None:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(self._cleanup_timeout),
                suppress(BrokerError),
            ):
                await conn.request([sub.unsubscribe_frame()])

    @asynccontextmanager
    async def subscribe(
        self, destination: str, *, prefetch: int = 1, durable: str | None = None
    ) -> AsyncIterator[_Sub]:
        if durable and self._client_id is None:
            raise ConfigError("a durable subscription needs a broker opened with a client_id")
        split_destination(destination)
        send, recv = trio.open_memory_channel[Delivery](float("inf"))
        sub = _Sub(self, f"s{next(self._ids)}", destination, max(1, prefetch), durable, send, recv)
        self._subs[sub.id] = sub
        conn = self._conn
        if conn is not None:
            # If this connection is failing, the supervisor resubscribes on the next one.
            with suppress(BrokerUnavailable):
                await conn.request([sub.subscribe_frame()])
        try:
            yield sub
        finally:
            await self._drop(sub)


@asynccontextmanager
async def open_stomp_broker(
    url: str,
    *,
    heartbeat: float = 4.0,
    cleanup_timeout: float = 3.0,
    client_id: str | None = None,
) -> AsyncIterator[StompBroker]:
    """Connect to ``stomp://[user:pass@]host:port`` (or several: see :mod:`._urls`, tried in
    turn, failing over between them); fail with BrokerUnavailable if none is reachable.

    ``cleanup_timeout`` bounds each shielded goodbye (UNSUBSCRIBE, DISCONNECT) on the way out.
    ``client_id`` (unique per process) is what durable subscriptions are kept under.
    """
    broker = StompBroker(parse_stomp_url(url), heartbeat, cleanup_timeout, client_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(broker._supervise)
        try:
            yield broker
        finally:
            nursery.cancel_scope.cancel()
