"""The notifier role: WebSocket sessions (trio-websocket) fed from the results topic.

``ws://<host>:<port>/ws?token=<signed token>``: the token's user receives the events of their
calculations as JSON text frames. Any number of notifiers run side by side: each subscribes
to the topic and delivers to the sessions it holds.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from osago.errors import TokenError, TokenExpired
from osago.roles._deps import NotifierDeps
from osago.roles._sessions import Hub
from osago.tokens import verify_token

__all__ = ["run"]

log = logging.getLogger("osago.notifier")


async def _pump(deps: NotifierDeps, hub: Hub, sub: object) -> None:
    async for delivery in sub:  # type: ignore[attr-defined]
        try:
            event = json.loads(delivery.body)
            user_id, calc, seq = event["user_id"], event["calculation_id"], int(event["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("notifier: unreadable event %s dropped", delivery.message_id)
            continue
        if not hub.first_time(calc, seq):
            continue
        n = hub.deliver(user_id, delivery.body.decode())
        log.info(
            "calculation %s: %s #%d pushed to %d sessions of %s",
            calc,
            event.get("type"),
            seq,
            n,
            user_id,
        )


def _handler(deps: NotifierDeps, hub: Hub):  # type: ignore[no-untyped-def]
    async def handle(request: WebSocketRequest) -> None:
        url = urlsplit(request.path)
        if url.path != "/ws":
            await request.reject(404)
            return
        token = (parse_qs(url.query).get("token") or [""])[0]
        try:
            claims = verify_token(deps.settings.ws_secret, token, now=deps.clock.now())
        except TokenError as exc:
            log.info("notifier: handshake refused: %s", exc)
            body = b"token expired" if isinstance(exc, TokenExpired) else b"invalid token"
            await request.reject(403, body=body)
            return
        ws = await request.accept()
        session = hub.open(claims.user_id)
        log.info("notifier: session opened for %s (%d sessions)", claims.user_id, hub.sessions)

        async def reader() -> None:
            # Clients have nothing to say yet; reading is how we notice their close.
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed:
                session.cancel.cancel()

        async def writer() -> None:
            try:
                async for text in session.recv:
                    await ws.send_message(text)
            except ConnectionClosed:
                session.cancel.cancel()

        try:
            with session.cancel:
                async with trio.open_nursery() as n:
                    n.start_soon(reader)
                    n.start_soon(writer)
        finally:
            hub.close(session)
            if session.dropped or deps.stop.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await ws.aclose(
                        1008 if session.dropped else 1001,
                        "too slow" if session.dropped else "server shutting down",
                    )

    return handle


async def run(
    deps: NotifierDeps, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve sessions until ``deps.stop``; started() gives the bound port."""
    s = deps.settings
    hub = Hub()
    async with trio.open_nursery() as nursery, deps.broker.subscribe(s.results_topic) as sub:
        nursery.start_soon(_pump, deps, hub, sub)
        handlers = trio.open_nursery()
        async with handlers as handler_nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    _handler(deps, hub),
                    s.notifier_bind.host,
                    s.notifier_bind.port,
                    None,
                    handler_nursery=handler_nursery,
                    task_status=task_status,
                )
            )
            log.info("notifier listening on ws://%s:%d/ws", s.notifier_bind.host, server.port)
            task_status.started(server.port)
            await deps.stop.wait()
            # Graceful: every session is closed with 1001 (going away), not left to time out.
            for session in hub.all():
                session.cancel.cancel()
        nursery.cancel_scope.cancel()
