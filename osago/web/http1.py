"""A lean HTTP/1.1 server on Trio streams and h11: one task per connection, keep-alive,
whole bodies, one ``send_all`` per response.

For endpoints that machines call at a high rate with small JSON bodies (the insurers'
simulator; the metrics endpoints). Why not Quart on Hypercorn there: profiled under the
realistic load, the framework (ASGI, Quart's contexts, Hypercorn's stream tasks) was 85 %
of the simulator's CPU and its own logic 7 %.

    async def handler(request: Request) -> Response: ...
    await serve_http(handler, listeners)

A request whose head or body is bad, or whose body exceeds ``max_body``, is answered 400 or
413 and the connection closed; a handler's exception is a 500 (and logged) and the
connection closed. An idle keep-alive connection is closed after ``keep_alive`` seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

__all__ = ["Handler", "Request", "Response", "json_response", "serve_http"]

log = logging.getLogger("osago.web")

# Why 75 s: clients (ours: 4 s; httpx: 5 s) must close an idle keep-alive connection before
# the server does; at equal timeouts both close at once and a request sent on a connection
# the server just closed fails ("connection broken") under load. The api's Hypercorn uses it.
KEEP_ALIVE = 75.0
MAX_BODY = 1 << 20
_READ = 65536


@dataclass(frozen=True, slots=True)
class Request:
    """One request: ``path`` without the query, ``query`` decoded, header names lowercase."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = ()


def json_response(
    data: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """``data`` as a JSON response."""
    return Response(status, json.dumps(data).encode(), "application/json", tuple(headers))


Handler = Callable[[Request], Awaitable[Response]]


_ERRORS = {400: "bad_request", 413: "too_large", 500: "internal"}


def _refusal(status: int, why: object) -> Response:
    """What the server answers itself, as JSON like every handler's answer."""
    return json_response({"error": _ERRORS[status], "message": str(why)}, status)


def _request(head: h11.Request, body: bytes) -> Request:
    target = urlsplit(head.target.decode("latin-1"))
    return Request(
        method=head.method.decode("ascii"),
        path=target.path,
        query=dict(parse_qsl(target.query)),
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers},
        body=body,
    )


def _encode(conn: h11.Connection, response: Response, *, close: bool = False) -> bytes:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        *response.headers,
    ]
    if close:
        headers.append(("connection", "close"))
    return b"".join(
        (
            conn.send(h11.Response(status_code=response.status, headers=headers)) or b"",
            conn.send(h11.Data(data=response.body)) or b"",
            conn.send(h11.EndOfMessage()) or b"",
        )
    )


async def _next_request(
    conn: h11.Connection, stream: trio.abc.Stream, max_body: int
) -> tuple[h11.Request, bytes] | None:
    """The next whole request, or None when the peer closed; h11.RemoteProtocolError (or
    ValueError for a body past ``max_body``) when it is bad."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(_READ)))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise ValueError(f"the body must be at most {max_body} bytes")
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, bytes(body)
        else:  # ConnectionClosed, or PAUSED without a request
            return None


async def _connection(
    handler: Handler, keep_alive: float, max_body: int, stream: trio.SocketStream
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_body)
    try:
        while True:
            got = None
            with trio.move_on_after(keep_alive):  # idle, or a head that never ends
                try:
                    got = await _next_request(conn, stream, max_body)
                except h11.RemoteProtocolError as exc:
                    await stream.send_all(_encode(conn, _refusal(400, exc), close=True))
                    return
                except ValueError as exc:
                    await stream.send_all(_encode(conn, _refusal(413, exc), close=True))
                    return
            if not got:
                return
            try:
                response = await handler(_request(*got))
            except Exception:
                log.exception("%s %s failed", got[0].method, got[0].target)
                failed = _refusal(500, "the request failed")
                await stream.send_all(_encode(conn, failed, close=True))
                return
            await stream.send_all(_encode(conn, response))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # the peer went away: nothing to answer
    finally:
        await stream.aclose()


async def serve_http(
    handler: Handler,
    listeners: list[trio.SocketListener],
    *,
    keep_alive: float = KEEP_ALIVE,
    max_body: int = MAX_BODY,
) -> None:
    """Serve ``handler`` on ``listeners`` until cancelled."""
    await trio.serve_listeners(partial(_connection, handler, keep_alive, max_body), listeners)
