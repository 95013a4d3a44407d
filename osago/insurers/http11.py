"""A lean HTTP/1.1 client on Trio streams (h11), with a keep-alive pool per origin.

Why not httpx here: an insurer exchange is a submit and a poll or two, a few hundred bytes
each, and at a national peak the workers make thousands of them a second. httpx/httpcore
spent most of a worker's CPU on them (its pool walks every connection on each request:
encode/httpcore#1035); this client does only what those calls need -- one origin per pool,
LIFO reuse of idle connections, bodies in memory -- at a fraction of the cost
(``bench/http_client.py`` measures both).

Connections: an idle connection is reused while younger than ``keepalive_expiry`` (keep it
below the server's keep-alive timeout) and while the server has not closed it (checked
before reuse). A request that fails on a reused connection before any byte of the answer
came back is sent again once on a new connection: the server most likely closed it as we
wrote, and every call we make is idempotent. A cancelled request closes its connection
(it may be mid-message). No timeouts here: the caller's cancel scope is the timeout.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import trio

__all__ = ["Http11Pool", "HttpTransportError", "Response"]

_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)


class HttpTransportError(Exception):
    """The request could not be completed (connect, send, receive or protocol failure)."""


class _Dropped(Exception):
    """The server closed the connection before answering."""


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers (names lower-case), body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(our_role=h11.CLIENT)
        self.idle_since = 0.0
        self.answered = False  # any byte of the current answer received

    def server_gone(self) -> bool:
        """True when an idle connection has something to read: EOF (or junk)."""
        socket_stream = getattr(self.stream, "transport_stream", self.stream)
        sock = getattr(socket_stream, "socket", None)
        return bool(sock is not None and sock.is_readable())

    def encode(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        """The request's bytes; h11 also tracks it, so the answer is parsed in its cycle."""
        h = self.h11
        parts = [h.send(h11.Request(method=method, target=target, headers=headers))]
        if body:
            parts.append(h.send(h11.Data(data=body)))
        parts.append(h.send(h11.EndOfMessage()))
        return b"".join(p for p in parts if p)

    async def exchange(self, request: bytes) -> Response:
        self.answered = False
        await self.stream.send_all(request)
        head: h11.Response | None = None
        body: list[bytes] = []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.answered = self.answered or bool(data)
                self.h11.receive_data(bytes(data))  # b"" is EOF
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in head.headers}
                return Response(head.status_code, headers, b"".join(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise _Dropped
            # InformationalResponse (100 Continue): nothing to do

    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)


class Http11Pool:
    """Keep-alive connections to one origin (``scheme://host:port``)."""

    def __init__(
        self,
        origin: str,
        *,
        keepalive_expiry: float = 4.0,
        max_idle: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        default_port = 443 if self._https else 80
        host_header = self._host if self._port == default_port else f"{self._host}:{self._port}"
        self._host_header = host_header
        self._expiry = keepalive_expiry
        self._max_idle = max_idle
        self._ssl = ssl_context or (ssl.create_default_context() if self._https else None)
        self._idle: list[_Connection] = []
        self.opened = 0  # connections opened so far (tests, benches)

    async def _connect(self) -> _Connection:
        if self._https:
            stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(
                self._host, self._port, ssl_context=self._ssl, https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(self._host, self._port)  # TCP_NODELAY is set
        self.opened += 1
        return _Connection(stream)

    async def _checkout(self) -> tuple[_Connection, bool]:
        now = trio.current_time()
        while self._idle:
            conn = self._idle.pop()  # LIFO: the warmest connection, least likely closed
            if now - conn.idle_since < self._expiry and not conn.server_gone():
                return conn, True
            await conn.aclose()
        return await self._connect(), False

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request (``target``: the path and query) and read the whole answer."""
        fields = self._fields(headers or [], body, method)
        for attempt in (1, 2):
            try:
                conn, reused = await self._checkout()
            except _ERRORS as exc:
                raise HttpTransportError(f"connect to {self._host}:{self._port}: {exc!r}") from exc
            try:
                response = await conn.exchange(conn.encode(method, target, fields, body))
            except (*_ERRORS, _Dropped) as exc:
                await conn.aclose()
                if reused and not conn.answered and attempt == 1:
                    continue  # the server closed it as we wrote: once more, on a new one
                raise HttpTransportError(f"{method} {target}: {exc!r}") from exc
            except BaseException:
                await conn.aclose()  # cancelled mid-message: this connection is unusable
                raise
            if conn.reusable() and len(self._idle) < self._max_idle:
                conn.h11.start_next_cycle()
                conn.idle_since = trio.current_time()
                self._idle.append(conn)
            else:
                await conn.aclose()
            return response
        raise AssertionError("unreachable")

    def _fields(
        self, headers: list[tuple[str, str]], body: bytes, method: str
    ) -> list[tuple[str, str]]:
        out = [("host", self._host_header), *headers]
        if body or method in ("POST", "PUT"):
            out.append(("content-length", str(len(body))))
        return out

    async def aclose(self) -> None:
        """Close every idle connection."""
        while self._idle:
            await self._idle.pop().aclose()
