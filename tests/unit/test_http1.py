"""The lean HTTP/1.1 server over a real socket: keep-alive, bodies, and every bad request
answered (400, 413, 500) with the connection closed, never a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from osago.web.http1 import Request, Response, json_response, serve_http

seen: list[Request] = []


async def handler(request: Request) -> Response:
    seen.append(request)
    if request.path == "/boom":
        raise RuntimeError("a handler defect")
    return json_response({"path": request.path, "query": request.query, "n": len(request.body)})


@asynccontextmanager
async def server(**kw: float) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(lambda: serve_http(handler, listeners, **kw))  # type: ignore[arg-type]
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def exchange(stream: trio.SocketStream, raw: bytes) -> bytes:
    """Send ``raw``; the server's whole response (head and Content-Length body)."""
    await stream.send_all(raw)
    out = b""
    with trio.fail_after(5):  # a guard: every answer here comes at once
        while b"\r\n\r\n" not in out:
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed before a whole head: {out!r}"
            out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body


async def test_two_requests_on_one_connection_with_a_body_and_a_query() -> None:
    seen.clear()
    async with server() as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        body = b'{"a": 1}'
        raw = (
            b"POST /x/calculations?wait=2 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        first = await exchange(stream, raw)
        second = await exchange(stream, b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
        await stream.aclose()
    assert first.startswith(b"HTTP/1.1 200")
    assert b'"query": {"wait": "2"}' in first
    assert b'"n": 8' in first
    assert second.startswith(b"HTTP/1.1 200")
    assert b'"path": "/y"' in second
    assert seen[0].headers["idempotency-key"] == "k"
    assert seen[0].json() == {"a": 1}


async def test_garbage_is_a_400_and_the_connection_closes() -> None:
    async with server() as port, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        answer = await exchange(stream, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"connection: close" in answer.lower()
    assert b'"error": "bad_request"' in answer


async def test_a_body_past_the_limit_is_a_413() -> None:
    async with server(max_body=16) as port:
        body = b"x" * 64
        raw = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n" + body
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            answer = await exchange(stream, raw)
    assert answer.startswith(b"HTTP/1.1 413")
    refusal = b'{"error": "too_large", "message": "the body must be at most 16 bytes"}'
    assert answer.endswith(refusal)


async def test_a_handler_defect_is_a_500_and_the_server_goes_on() -> None:
    async with server() as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            answer = await exchange(stream, b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 500")
        assert b'"error": "internal"' in answer
        async with await trio.open_tcp_stream("127.0.0.1", port) as again:
            answer = await exchange(again, b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")


async def test_an_idle_connection_is_closed_after_the_keep_alive(
    autojump_clock: MockClock,
) -> None:
    async with server(keep_alive=75.0) as port:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            start = trio.current_time()
            assert await stream.receive_some(10) == b""  # closed by the server
        assert trio.current_time() - start == pytest.approx(75.0)
