"""The notifier role: WebSocket sessions (trio-websocket) fed from the results topic.

``ws://<host>:<port>/ws?token=<signed token>``. The token's user receives the events of their
calculations as JSON text frames. Any number of notifiers run side by side: each subscribes to
the topic, delivers to the sessions it holds, and keeps recent events so that a client that
reconnects (here or to another instance) gets exactly what it missed.

Client messages: ``{"type": "refresh", "token"}`` extends the session without reconnecting;
``{"type": "resume", "calculations": [{"calculation_id", "last_seq", "created_at"}]}`` replays
missed events, or answers ``resume_failed`` (then fetch ``GET /api/v1/calculations/{id}``).
A handshake with a bad token, over a cap, or to another path is refused before it is accepted
(:data:`osago.roles._sessions.REFUSE`: HTTP status + JSON reason); an open session's close
codes are in :data:`osago.roles._sessions.CLOSE` (4001: token expired).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    serve_websocket,
)

from osago.batching import Deferred
from osago.broker import Subscription
from osago.errors import TokenError, TokenExpired
from osago.events import unpack
from osago.models import Push, iso
from osago.roles._deps import NotifierDeps
from osago.roles._sessions import CLOSE, REFUSE, History, Hub, Session
from osago.roles._topic import JSON_ERRORS, Event, note_of, read_event, timestamp
from osago.tokens import verify_token

__all__ = ["run"]

log = logging.getLogger("osago.notifier")


async def _reject(request: WebSocketRequest, reason: str) -> None:
    """Refuse a handshake with ``REFUSE[reason]``: its HTTP status and a JSON body."""
    status, detail = REFUSE[reason]
    body = json.dumps({"error": reason, "detail": detail}).encode()
    await request.reject(status, extra_headers=[(b"content-type", b"application/json")], body=body)


async def _pump(deps: NotifierDeps, hub: Hub, history: History, sub: Subscription) -> None:
    # The subscription is durable: events published while we reconnect to the broker wait
    # for us. Each is acked once queued to its sessions (or dropped as unreadable), so one in
    # flight at a disconnect comes again; the hub's (calculation, seq) check drops repeats.
    # A message carries one event or several, one per line (osago.events.pack); a line that
    # is not an event is dropped alone, and the message is acked once, after all of them.
    async for delivery in sub:
        for line, body in enumerate(unpack(delivery.body), 1):
            try:
                event = read_event(body)
            except ValueError as exc:
                log.warning(
                    "notifier: event %s (line %d) dropped: %s", delivery.message_id, line, exc
                )
                continue
            try:
                _push(deps, hub, history, event)
            except Exception:  # a defect here must not stop every user's events
                log.exception(
                    "calculation %s: event #%d not pushed; the pump goes on",
                    event.calculation_id,
                    event.seq,
                    extra={"calculation_id": event.calculation_id},
                )
        await sub.ack(delivery)


def _push(deps: NotifierDeps, hub: Hub, history: History, e: Event) -> None:
    calc, seq = e.calculation_id, e.seq
    if hub.first_time(calc, seq):
        now = deps.clock.now()
        history.record(calc, e.user_id, seq, e.text, now)
        n = hub.deliver(e.user_id, e.text, (calc, seq), e.received_at, note_of(e))
        deps.metrics.events_pushed.labels(e.type).inc()
        # DEBUG: a line per event was a third of all log lines at INFO (11 a calculation);
        # each push is in the calculation's timeline (`osago timeline`) anyway.
        log.debug(
            "calculation %s: event #%d pushed to %d sessions of %s",
            calc,
            seq,
            n,
            e.user_id,
            extra={"calculation_id": calc},
        )


class _Handler:
    """Everything one session does, from handshake to close."""

    def __init__(
        self, deps: NotifierDeps, hub: Hub, history: History, pushes: Deferred[Push] | None
    ) -> None:
        self.deps, self.hub, self.history = deps, hub, history
        self.pushes = pushes  # frames written, for timelines (None: no store to keep them)
        self.connections = 0  # handshakes and sessions this process holds

    async def __call__(self, request: WebSocketRequest) -> None:
        """One session; a defect in it is logged and ends this session only."""
        self.connections += 1
        try:
            await self._session(request)
        except Exception:
            log.exception("notifier: session on %s failed; the others go on", request.path[:80])
        finally:
            self.connections -= 1

    async def _session(self, request: WebSocketRequest) -> None:
        # Everything that can refuse a connection is decided on the handshake, before it is
        # accepted: a refused client costs no session, no buffer and no tasks, and sees an HTTP
        # status (401, 404, 429, 503) with a JSON reason instead of an opened-then-closed socket.
        url = urlsplit(request.path)
        if url.path != "/ws":
            await _reject(request, "not_found")
            return
        if self.connections > self.deps.settings.ws_max_connections:
            log.warning("notifier: connection refused: %d open", self.connections - 1)
            await _reject(request, "too_many_connections")
            return
        token = (parse_qs(url.query).get("token") or [""])[0]
        try:
            claims = verify_token(self.deps.settings.ws_secret, token, now=self.deps.clock.now())
        except TokenError as exc:
            log.info("notifier: session refused: %s", exc)
            await _reject(request, "expired" if isinstance(exc, TokenExpired) else "invalid_token")
            return
        session = self.hub.open(claims.user_id, claims.expires_at)
        if session is None:
            await _reject(request, "too_many")
            return
        try:
            ws = await request.accept()
        except BaseException:
            self.hub.close(session)
            raise
        self.deps.metrics.ws_sessions.inc()
        log.info("notifier: session opened for %s (%d sessions)", claims.user_id, self.hub.sessions)
        try:
            self.hub.push(
                session,
                json.dumps(
                    {
                        "type": "hello",
                        "user_id": session.user_id,
                        "expires_at": iso(session.expires_at),
                        "resume_window_seconds": self.history.retention,
                    }
                ),
            )
            with session.cancel:
                async with trio.open_nursery() as n:
                    n.start_soon(self._reader, ws, session)
                    n.start_soon(self._writer, ws, session)
                    n.start_soon(self._expiry, session)
                    n.start_soon(self._pinger, ws, session)
        finally:
            self.hub.close(session)
            self.deps.metrics.ws_sessions.dec()
            reason = "going_away" if self.deps.stop.is_set() else session.close_reason
            if reason is not None:
                await self._close(ws, reason)

    async def _close(self, ws: WebSocketConnection, reason: str) -> None:
        code, text = CLOSE[reason]
        with trio.CancelScope(shield=True), trio.move_on_after(self.deps.settings.cleanup_timeout):
            await ws.aclose(code, text)

    async def _reader(self, ws: WebSocketConnection, session: Session) -> None:
        try:
            while True:
                raw = await ws.get_message()
                self._on_message(session, raw)
        except ConnectionClosed as exc:
            if exc.reason is not None and exc.reason.code == 1009:
                session.end("too_big")
            session.cancel.cancel()

    def _on_message(self, session: Session, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
            kind = msg["type"]
            if not isinstance(msg, dict) or not isinstance(kind, str):
                raise TypeError("not an object with a type")
        except JSON_ERRORS:
            self.hub.push(
                session, json.dumps({"type": "error", "message": "send JSON with a type"})
            )
            return
        if kind == "refresh":
            self._refresh(session, msg)
        elif kind == "resume":
            self._resume(session, msg)
        else:
            self.hub.push(session, json.dumps({"type": "error", "message": f"unknown {kind!r}"}))

    def _refresh(self, session: Session, msg: dict[str, Any]) -> None:
        try:
            claims = verify_token(
                self.deps.settings.ws_secret, str(msg.get("token")), now=self.deps.clock.now()
            )
        except TokenError as exc:
            session.end("expired" if isinstance(exc, TokenExpired) else "invalid_token")
            return
        if claims.user_id != session.user_id:
            session.end("invalid_token")
            return
        session.expires_at = claims.expires_at
        session.expiry.deadline = self.deps.clock.trio_time(claims.expires_at)
        self.hub.push(
            session, json.dumps({"type": "refreshed", "expires_at": iso(claims.expires_at)})
        )

    def _resume(self, session: Session, msg: dict[str, Any]) -> None:
        now = self.deps.clock.now()
        items = msg.get("calculations")
        if not isinstance(items, list):
            self.hub.push(session, json.dumps({"type": "error", "message": "bad resume"}))
            return
        for item in items:
            try:
                calc = item["calculation_id"]
                last_seq = item.get("last_seq", 0)
                if not isinstance(calc, str) or not isinstance(last_seq, int):
                    raise TypeError("calculation_id must be a string, last_seq a whole number")
                missed = self.history.missed(
                    calc, session.user_id, last_seq, timestamp(item["created_at"]), now
                )
            except (*JSON_ERRORS, AttributeError):
                self.hub.push(session, json.dumps({"type": "error", "message": "bad resume item"}))
                continue
            if missed is None:
                self.hub.push(
                    session,
                    json.dumps(
                        {
                            "type": "resume_failed",
                            "calculation_id": calc,
                            "message": f"catch up with GET /api/v1/calculations/{calc}",
                        }
                    ),
                )
                continue
            for seq, text in missed:
                if (calc, seq) in session.delivered:
                    continue  # came live between connecting and this resume
                if not self.hub.push(session, text):
                    return
                session.delivered.add((calc, seq))

    async def _writer(self, ws: WebSocketConnection, session: Session) -> None:
        try:
            delivery = self.deps.metrics.event_delivery
            async for text, received_at, note in session.recv:
                await ws.send_message(text)
                if received_at is not None:  # the answer at the worker -> written to this tab
                    delivery.observe(max(0.0, self.deps.clock.now() - received_at))
                if note is not None and self.pushes is not None:
                    self.pushes.add([replace(note, at=self.deps.clock.now())])
        except ConnectionClosed:
            session.cancel.cancel()

    async def _expiry(self, session: Session) -> None:
        """Close with 4001 when the token runs out; a refresh moves the scope's deadline."""
        with session.expiry:
            session.expiry.deadline = self.deps.clock.trio_time(session.expires_at)
            await trio.sleep_forever()
        session.end("expired")

    async def _pinger(self, ws: WebSocketConnection, session: Session) -> None:
        """Ping idle sessions; a peer that does not pong in time is dropped."""
        s = self.deps.settings
        next_ping = trio.current_time() + s.ws_ping_interval
        while True:
            await trio.sleep_until(next_ping)
            next_ping += s.ws_ping_interval
            with trio.move_on_after(s.ws_ping_timeout) as waited:
                try:
                    await ws.ping()
                except ConnectionClosed:
                    session.cancel.cancel()
                    return
            if waited.cancelled_caught:
                session.end("no_pong")
                return


async def run(
    deps: NotifierDeps, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve sessions until ``deps.stop``; started() gives the bound port."""
    s = deps.settings
    hub = Hub(buffer=s.ws_send_buffer, per_user=s.ws_sessions_per_user)
    history = History(started_at=deps.clock.now(), retention=s.ws_resume_window)
    async with (
        trio.open_nursery() as nursery,
        deps.broker.subscribe(s.results_topic, prefetch=1000, durable="osago-notifier") as sub,
    ):
        nursery.start_soon(_pump, deps, hub, history, sub)
        pushes = None
        if deps.store is not None:
            # For timelines only: written late, in batches, lost at worst; a database that is
            # away never holds up a frame.
            pushes = Deferred(
                "pushes",
                deps.store.record_pushes,
                linger=s.trail_linger,
                cleanup_timeout=s.cleanup_timeout,
            )
            await nursery.start(pushes.run)
        listening = trio.CancelScope()

        async def listen(task_status: trio.TaskStatus[WebSocketServer]) -> None:
            with listening:
                await serve_websocket(
                    _Handler(deps, hub, history, pushes),
                    s.notifier_bind.host,
                    s.notifier_bind.port,
                    None,
                    handler_nursery=handler_nursery,
                    max_message_size=s.ws_max_message,
                    task_status=task_status,
                )

        async with trio.open_nursery() as handler_nursery:
            server = await nursery.start(listen)
            log.info("notifier listening on ws://%s:%d/ws", s.notifier_bind.host, server.port)
            task_status.started(server.port)
            await deps.stop.wait()
            # Graceful, and bounded even while clients keep reconnecting: stop listening
            # first (no new sessions), close every session with 1001 (going away), and give
            # handshakes in flight and the closing handshakes cleanup_timeout in all.
            listening.cancel()
            for session in hub.all():
                session.cancel.cancel()
            handler_nursery.cancel_scope.deadline = trio.current_time() + s.cleanup_timeout
        log.info("notifier stopped")
        nursery.cancel_scope.cancel()
