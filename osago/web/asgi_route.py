"""One hot POST route served in plain ASGI, in front of the Quart application.

Why: insurers' callbacks are two of every three requests the api serves, and for each Quart
builds a request context, routes, and makes werkzeug request and response objects: about a
quarter of the api's CPU went to Quart's own work (py-spy, calm 40/s). This route takes the
body and one header from the ASGI scope and answers JSON itself; every other request, and
any request this route does not match exactly, goes to the application unchanged.

It answers as the application would: a body over ``max_body`` is 413 ``too_large`` (before
it is read, when Content-Length says so), a failure of the handler is logged and is 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from osago.models import JSON

__all__ = ["Handler", "plain_post_route"]

log = logging.getLogger("osago.api")

# (the path's last segment, the body, the header asked for or None) -> (JSON body, status)
Handler = Callable[[str, bytes, str | None], Awaitable[tuple[JSON, int]]]
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


async def _answer(send: Any, payload: JSON, status: int) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def plain_post_route(
    app: ASGIApp, *, prefix: str, header: str, max_body: int, too_large: JSON, handle: Handler
) -> ASGIApp:
    """``app`` with ``POST <prefix><name>`` (``name`` without a slash) served by ``handle``;
    a body over ``max_body`` bytes is answered 413 with ``too_large``."""
    wanted = header.lower().encode("latin-1")

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
        signature = None
        declared = 0
        for key, value in scope["headers"]:
            if key == wanted:
                signature = value.decode("latin-1")
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
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
            payload, status = await handle(name, body, signature)
        except Exception:
            log.exception("api: POST %s failed", path[:80])
            payload, status = {"error": "internal", "message": "the request failed"}, 500
        await _answer(send, payload, status)

    return asgi
