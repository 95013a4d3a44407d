"""Hot POST routes served in plain ASGI, in front of the Quart application.

Why: insurers' callbacks are two of every three requests the api serves, and for each Quart
builds a request context, routes, and makes werkzeug request and response objects: about a
quarter of the api's CPU went to Quart's own work (py-spy, calm 40/s). A route here takes
the body and one header from the ASGI scope and answers JSON itself; every other request,
and any request no route matches exactly, goes to the application unchanged.
:func:`plain_post_route` serves ``POST <prefix><name>`` (the callbacks);
:func:`plain_post_at` one path, answering its other methods 405 (a new calculation: Quart's
share of its CPU was about 0.6 ms a calculation, alternating runs at calm 50/s).

Each answers as the application would: a body over ``max_body`` is 413 ``too_large``
(before it is read, when Content-Length says so), a failure of the handler is logged and
is 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from osago.models import JSON

__all__ = ["Handler", "PathHandler", "Reply", "plain_post_at", "plain_post_route"]

log = logging.getLogger("osago.api")

# (the path's last segment, the body, the header asked for or None) -> (JSON body, status)
Handler = Callable[[str, bytes, str | None], Awaitable[tuple[JSON, int]]]
# (the body, the header asked for or None) -> (JSON body, status, extra headers)
Reply = tuple[JSON, int, Sequence[tuple[str, str]]]
PathHandler = Callable[[bytes, str | None], Awaitable[Reply]]
ASGIApp = Callable[..., Awaitable[None]]  # (scope, receive, send)


class _TooLarge(Exception):
    pass


async def _body(receive: Any, max_body: int) -> bytes | None:
    """The request's body; None if the client went away first."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Any, payload: JSON, status: int, extra: Sequence[tuple[str, str]] = ()
) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _serve_post(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    *,
    header: bytes,
    max_body: int,
    too_large: JSON,
    handle: PathHandler,
) -> None:
    """One POST this module serves: its size checked, its body read, ``handle``'s reply."""
    value = None
    declared = 0
    for key, raw in scope["headers"]:
        if key == header:
            value = raw.decode("latin-1")
        elif key == b"content-length" and raw.isdigit():
            declared = int(raw)
    if declared > max_body:
        await _answer(send, too_large, 413)
        return
    try:
        body = await _body(receive, max_body)
    except _TooLarge:
        await _answer(send, too_large, 413)
        return
    if body is None:
        return
    try:
        payload, status, extra = await handle(body, value)
    except Exception:
        log.exception("api: POST %s failed", scope.get("path", "")[:80])
        payload, status, extra = {"error": "internal", "message": "the request failed"}, 500, ()
    await _answer(send, payload, status, extra)


def _post_server(header: str, max_body: int, too_large: JSON) -> Callable[..., Awaitable[None]]:
    """:func:`_serve_post` with a route's fixed arguments."""
    wanted = header.lower().encode("latin-1")
    return partial(_serve_post, header=wanted, max_body=max_body, too_large=too_large)


def plain_post_route(
    app: ASGIApp, *, prefix: str, header: str, max_body: int, too_large: JSON, handle: Handler
) -> ASGIApp:
    """``app`` with ``POST <prefix><name>`` (``name`` without a slash) served by ``handle``;
    a body over ``max_body`` bytes is answered 413 with ``too_large``."""
    serve = _post_server(header, max_body, too_large)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        name = path[len(prefix) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(prefix)
            or not name
            or "/" in name
        ):
            await app(scope, receive, send)
            return

        async def named(body: bytes, value: str | None) -> Reply:
            payload, status = await handle(name, body, value)
            return payload, status, ()

        await serve(scope, receive, send, handle=named)

    return asgi


def plain_post_at(
    app: ASGIApp,
    *,
    path: str,
    header: str,
    max_body: int,
    too_large: JSON,
    not_allowed: JSON,
    handle: PathHandler,
) -> ASGIApp:
    """``app`` with ``POST <path>`` served by ``handle`` (given the body and ``header``'s
    value), any other method on ``path`` answered 405 with ``not_allowed``; a body over
    ``max_body`` bytes is answered 413 with ``too_large``."""
    serve = _post_server(header, max_body, too_large)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != path:
            await app(scope, receive, send)
        elif scope["method"] != "POST":
            await _answer(send, not_allowed, 405, [("allow", "POST")])
        else:
            await serve(scope, receive, send, handle=handle)

    return asgi
