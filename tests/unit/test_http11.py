"""The lean HTTP/1.1 client against a real socket server: keep-alive, stale connections,
chunked bodies, cancellation, and failures translated into one error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from osago.insurers.http11 import Http11Pool, HttpTransportError

Handler = Callable[[trio.SocketStream, int], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}"


async def read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            while len(body) < int(line.split(b":")[1]):
                body += await stream.receive_some(4096)
    return head


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """A server on a free port; ``handler(stream, n)`` serves connection number n."""
    count = 0

    async def serve(stream: trio.SocketStream) -> None:
        nonlocal count
        count += 1
        async with stream:
            await handler(stream, count)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def keep_alive(stream: trio.SocketStream, n: int) -> None:
    while await read_request(stream):
        await stream.send_all(OK)


async def test_connections_are_kept_alive_and_reused() -> None:
    async with server(keep_alive) as url:
        pool = Http11Pool(url)
        for _ in range(3):
            r = await pool.request("GET", "/x")
            assert (r.status, r.body, r.headers["content-type"]) == (200, b"{}", "application/json")
        r = await pool.request("POST", "/x", headers=[("a", "b")], body=b'{"k": 1}')
        assert r.status == 200
        assert pool.opened == 1
        await pool.aclose()


async def test_a_connection_the_server_closed_is_replaced() -> None:
    async def one_answer(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(OK)  # then close, as a server's keep-alive timeout does

    async with server(one_answer) as url:
        pool = Http11Pool(url)
        assert (await pool.request("GET", "/x")).status == 200
        await trio.sleep(0.05)  # the close reaches us: seen before reuse
        assert (await pool.request("GET", "/x")).status == 200
        assert pool.opened == 2
        await pool.aclose()


async def test_a_close_racing_the_request_is_retried_once_on_a_new_connection() -> None:
    async def drop_second(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(OK)
        if n == 1:
            await read_request(stream)  # the reused connection: closed without an answer
            return
        while await read_request(stream):
            await stream.send_all(OK)

    async with server(drop_second) as url:
        pool = Http11Pool(url)
        await pool.request("GET", "/x")
        assert (await pool.request("GET", "/x")).status == 200
        assert pool.opened == 2
        await pool.aclose()


async def test_chunked_bodies_are_read_whole() -> None:
    async def chunked(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b'3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
        )

    async with server(chunked) as url:
        pool = Http11Pool(url)
        assert (await pool.request("GET", "/")).body == b'{"a": 1}'
        await pool.aclose()


async def test_a_cancelled_request_closes_its_connection() -> None:
    async def slow_then_fast(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        if n == 1:
            await trio.sleep(10)
        await stream.send_all(OK)

    async with server(slow_then_fast) as url:
        pool = Http11Pool(url)
        with trio.move_on_after(0.1):
            await pool.request("GET", "/slow")
        assert (await pool.request("GET", "/x")).status == 200
        assert pool.opened == 2  # the cancelled one was not reused
        await pool.aclose()


async def test_a_cancelled_request_that_was_not_answered_yet_is_drained_and_reused() -> None:
    """A hedge cancels the slower call, most often while it waits for its answer: with a
    drains nursery that connection is read to the end of its answer and kept."""

    async def slow_first(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await trio.sleep(0.2)
        await stream.send_all(OK)
        await keep_alive(stream, n)

    async with server(slow_first) as url, trio.open_nursery() as drains:
        pool = Http11Pool(url, drains=drains)
        with trio.move_on_after(0.05) as cancelled:
            await pool.request("GET", "/slow")
        assert cancelled.cancelled_caught
        await trio.sleep(0.4)  # the answer came and was read
        assert (await pool.request("GET", "/x")).status == 200
        assert pool.opened == 1
        await pool.aclose()


async def test_a_drain_gives_up_on_a_begun_answer_a_silent_server_or_a_closed_pool() -> None:
    async def begun_then_silent(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        if n == 1:  # the answer begins before the cancel, and ends after it
            await stream.send_all(OK[:10])
            await trio.sleep(0.2)
            await stream.send_all(OK[10:])
            await keep_alive(stream, n)
        await trio.sleep(10)  # the others never answer

    async with server(begun_then_silent) as url, trio.open_nursery() as drains:
        pool = Http11Pool(url, drains=drains, drain_timeout=0.5)
        for _ in range(2):  # begun: closed at once; silent: drained, given up after 0.5 s
            with trio.move_on_after(0.1) as cancelled:
                await pool.request("GET", "/x")
            assert cancelled.cancelled_caught
            await trio.sleep(0.7)
        assert (pool.opened, pool._idle) == (2, [])
        with trio.move_on_after(0.1):
            await pool.request("GET", "/x")
        await pool.aclose()  # while the third one drains: it is closed, not kept
        drains.cancel_scope.cancel()
    assert (pool.opened, pool._idle) == (3, [])


async def test_failures_are_one_error() -> None:
    async def hang_up(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)

    async with server(hang_up) as url:
        with pytest.raises(HttpTransportError):
            await Http11Pool(url).request("GET", "/")
    with pytest.raises(HttpTransportError, match="connect"):
        await Http11Pool("http://127.0.0.1:9").request("GET", "/")
    with pytest.raises(ValueError, match="origin"):
        Http11Pool("ftp://example.test")


def answering(*answers: bytes) -> Handler:
    """A server that answers each request on a connection with the next of ``answers``, then
    closes it."""

    async def handler(stream: trio.SocketStream, n: int) -> None:
        for answer in answers:
            if not await read_request(stream):
                return
            await stream.send_all(answer)

    return handler


@pytest.mark.parametrize(
    ("answer", "body", "reused"),
    [
        # Interim answers are skipped; the final one follows on the same connection.
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, b"{}", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}", b"{}", False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"{}", False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}", b"{}", True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\n{}", b"{}", True),
        # Chunk extensions and trailers are read past.
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"2;x=1\r\n{}\r\n0\r\nt: 1\r\n\r\n",
            b"{}",
            True,
        ),
        # Bytes after the answer answer nothing: that connection is not reused.
        (OK + b"HTTP/1.1 200 OK\r\n", b"{}", False),
    ],
)
async def test_answers_are_framed_as_http_1_1_says(
    answer: bytes, body: bytes, reused: bool
) -> None:
    async with server(answering(answer, answer)) as url:
        pool = Http11Pool(url)
        for _ in range(2):
            r = await pool.request("GET", "/x")
            assert (r.status in (200, 204), r.body) == (True, body)
        assert pool.opened == (1 if reused else 2)
        await pool.aclose()


async def test_a_body_without_length_is_read_to_the_close() -> None:
    async def until_close(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\n{")
        await stream.send_all(b'"a": 1}')

    async with server(until_close) as url:
        pool = Http11Pool(url)
        r = await pool.request("GET", "/x")
        assert r.body == b'{"a": 1}'
        assert (await pool.request("GET", "/x")).body == b'{"a": 1}'
        assert pool.opened == 2
        await pool.aclose()


async def test_repeated_headers_are_joined_and_names_lower_cased() -> None:
    answer = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
    async with server(answering(answer)) as url:
        pool = Http11Pool(url)
        r = await pool.request("GET", "/x")
        assert r.headers == {"x-a": "1, 2", "content-length": "0"}
        await pool.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: 1\r\n folded\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}",  # then closed: short
        b"HTTP/1.1 200 OK\r\ncontent-le",  # closed in the head
        b"HTTP/1.1 200 OK\r\n" + b"x: " + b"y" * 70_000 + b"\r\n\r\n",
    ],
)
async def test_answers_that_break_the_protocol_are_one_error(answer: bytes) -> None:
    async with server(answering(answer)) as url:
        pool = Http11Pool(url)
        with pytest.raises(HttpTransportError):
            await pool.request("GET", "/x")
        assert pool.opened == 1  # not retried: the server did answer
        await pool.aclose()


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/x\r\nx-injected: 1", []),
        ("GET", "/a b", []),
        ("GET", "", []),
        ("G ET", "/x", []),
        ("GET", "/x", [("x-a", "1\r\nx-injected: 1")]),
        ("GET", "/x", [("x a", "1")]),
        ("GET", "/x", [("x-a", "\u20bd")]),
    ],
)
async def test_a_request_that_would_break_the_framing_is_never_sent(
    method: str, target: str, headers: list[tuple[str, str]]
) -> None:
    pool = Http11Pool("http://127.0.0.1:9")
    with pytest.raises(ValueError):  # noqa: PT011 (the message names the part)
        await pool.request(method, target, headers=headers)
    assert pool.opened == 0
