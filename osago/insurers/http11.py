"""A lean HTTP/1.1 client on Trio streams, with a keep-alive pool per origin.

Why not httpx here: an insurer exchange is a submit and a poll or two, a few hundred bytes
each, and at a national peak the workers make thousands of them a second. httpx/httpcore
spent most of a worker's CPU on them (its pool walks every connection on each request:
encode/httpcore#1035); this client does only what those calls need -- one origin per pool,
LIFO reuse of idle connections, bodies in memory -- at a fraction of the cost
(``bench/http_client.py`` measures both).

Why not h11 under it either: h11's event machinery was 12 % of a busy worker's CPU (py-spy,
calm 30/s), for answers that are a status line, a few headers and a small body. The
framing here is the part of RFC 9112 a client of small JSON answers needs: the head read
whole (at most ``MAX_HEAD`` bytes), then a body by ``Content-Length``, ``chunked``, or up to
EOF (the connection then closes); no body for 1xx, 204, 304 or HEAD; interim 1xx answers
skipped. Anything else (a bad status line, obs-fold, conflicting lengths, a chunk size that
is not hex, bytes after the answer) is a protocol error, and that connection is closed.

Connections: an idle connection is reused while younger than ``keepalive_expiry`` (keep it
below the server's keep-alive timeout) and while the server has not closed it (checked
before reuse). A request that fails on a reused connection before any byte of the answer
came back is sent again once on a new connection: the server most likely closed it as we
wrote, and every call we make is idempotent. No timeouts here: the caller's cancel scope
is the timeout.

A cancelled request closes its connection (it may be mid-message), with one exception: a
pool given a ``drains`` nursery hands a connection whose request was sent whole and whose
answer had not begun to a task there, which reads that answer (for at most
``drain_timeout`` seconds) and, if the connection stays reusable, puts it back. Why: a
hedged poll cancels the slower of its two calls, most often while it waits for its answer;
closing that connection made the next request open one (376 reconnects in a calm 40/s
step), and against an HTTPS insurer each is a TLS handshake on both sides.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

__all__ = ["Http11Pool", "HttpTransportError", "Response"]

MAX_HEAD = 64 * 1024  # bytes of status line and headers an answer may have
_READ = 65536
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and other controls
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HttpTransportError(Exception):
    """The request could not be completed (connect, send, receive or protocol failure)."""


class _ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1 as we read it."""


class _Dropped(Exception):
    """The server closed the connection before answering."""


_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, _ProtocolError)


@dataclass(frozen=True)
class Response:
    """A complete answer: status, headers (names lower-case), body."""

    status: int
    headers: dict[str, str]
    body: bytes


def _encode_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The request's bytes. ``ValueError`` for a method, target or header that would break
    the framing (a CR or LF smuggled into a value, say): never sent."""
    if not _TOKEN.fullmatch(method.encode("ascii", "replace")):
        raise ValueError(f"bad method {method!r}")
    if not target or _BAD_TARGET.search(target) or not target.isascii():
        raise ValueError(f"bad request target {target!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name.encode("ascii", "replace")) or _BAD_VALUE.search(value):
            raise ValueError(f"bad header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


class _Connection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.idle_since = 0.0
        self.sent = False  # the current request was written whole
        self.answered = False  # any byte of the current answer received
        self.keep = False  # the last answer left the connection reusable
        self._buf = bytearray()

    def server_gone(self) -> bool:
        """True when an idle connection has something to read: EOF (or junk)."""
        socket_stream = getattr(self.stream, "transport_stream", self.stream)
        sock = getattr(socket_stream, "socket", None)
        return bool(sock is not None and sock.is_readable())

    async def _more(self) -> bool:
        """Read what the server sent into the buffer; False at EOF."""
        data = await self.stream.receive_some(_READ)
        if not data:
            return False
        self.answered = True
        self._buf += data
        return True

    async def _head(self) -> tuple[int, int, dict[str, str]]:
        """(minor version, status, headers) of the next answer's head, consumed."""
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise _ProtocolError("the answer's head is too large")
            if not await self._more():
                if self._buf:
                    raise _ProtocolError("the connection closed in the answer's head")
                raise _Dropped
        if end > MAX_HEAD:
            raise _ProtocolError("the answer's head is too large")
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        status_line, *lines = head.split(b"\r\n")
        m = _STATUS.fullmatch(status_line)
        if m is None:
            raise _ProtocolError(f"bad status line {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise _ProtocolError(f"bad header line {line[:80]!r}")  # obs-fold too
            key = name.decode("ascii").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return int(m[1]), int(m[2]), headers

    async def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self._more():
                raise _ProtocolError("the connection closed in the answer's body")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def _line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise _ProtocolError("a chunk line is too long")
            if not await self._more():
                raise _ProtocolError("the connection closed in a chunked body")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = (await self._line()).split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise _ProtocolError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(await self._exactly(size))
            if await self._exactly(2) != b"\r\n":
                raise _ProtocolError("a chunk does not end with CRLF")

    async def _to_eof(self) -> bytes:
        while await self._more():
            pass
        data = bytes(self._buf)
        self._buf.clear()
        return data

    async def exchange(self, request: bytes, method: str) -> Response:
        self.sent = self.answered = self.keep = False
        await self.stream.send_all(request)
        self.sent = True
        return await self.answer(method)

    async def answer(self, method: str) -> Response:
        """The answer to the request just sent (to ``method``), read whole."""
        while True:
            minor, status, headers = await self._head()
            if not 100 <= status < 200:
                break  # 1xx (100 Continue, 103 Early Hints): interim, the answer follows
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in tokens and (minor == 1 or "keep-alive" in tokens)
        coding = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif coding:
            if coding != "chunked":
                raise _ProtocolError(f"transfer-encoding {coding[:40]!r}")
            body = await self._chunked()
        elif length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not (size := values.pop()).isdigit() or len(size) > 18:
                raise _ProtocolError(f"bad content-length {length[:40]!r}")
            body = await self._exactly(int(size))
        else:
            body, keep = await self._to_eof(), False
        # Bytes past the answer would be an answer to nothing: never reuse such a connection.
        self.keep = keep and not self._buf
        return Response(status, headers, body)

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
        drains: trio.Nursery | None = None,
        drain_timeout: float = 5.0,
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
        self._drains = drains
        self._drain_timeout = drain_timeout
        self._draining = 0
        self._closed = False  # aclose() was called: nothing goes back to the pool
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
        request = _encode_request(method, target, self._fields(headers or [], body, method), body)
        for attempt in (1, 2):
            try:
                conn, reused = await self._checkout()
            except _ERRORS as exc:
                raise HttpTransportError(f"connect to {self._host}:{self._port}: {exc!r}") from exc
            try:
                response = await conn.exchange(request, method)
            except (*_ERRORS, _Dropped) as exc:
                await conn.aclose()
                if reused and not conn.answered and attempt == 1:
                    continue  # the server closed it as we wrote: once more, on a new one
                raise HttpTransportError(f"{method} {target}: {exc!r}") from exc
            except trio.Cancelled:
                if not self._drain_later(conn, method):
                    await conn.aclose()  # cancelled mid-message: this connection is unusable
                raise
            except BaseException:
                await conn.aclose()
                raise
            await self._checkin(conn)
            return response
        raise AssertionError("unreachable")

    async def _checkin(self, conn: _Connection) -> None:
        if conn.keep and len(self._idle) < self._max_idle and not self._closed:
            conn.idle_since = trio.current_time()
            self._idle.append(conn)
        else:
            await conn.aclose()

    def _drain_later(self, conn: _Connection, method: str) -> bool:
        """Hand a cancelled request's connection to a drain, if it can be saved: the request
        went out whole, no byte of its answer came, and fewer drains than ``max_idle`` run."""
        if self._drains is None or not conn.sent or conn.answered:
            return False
        if self._draining >= self._max_idle:
            return False
        self._draining += 1
        self._drains.start_soon(self._drain, conn, method)
        return True

    async def _drain(self, conn: _Connection, method: str) -> None:
        # ``keep`` is set only by an answer read whole: a timeout or an error leaves it False.
        try:
            with trio.move_on_after(self._drain_timeout):
                await conn.answer(method)
        except (*_ERRORS, _Dropped):
            pass
        except BaseException:  # the drains' nursery is cancelled: the pool is closing
            await conn.aclose()
            raise
        finally:
            self._draining -= 1
        await self._checkin(conn)

    def _fields(
        self, headers: list[tuple[str, str]], body: bytes, method: str
    ) -> list[tuple[str, str]]:
        out = [("host", self._host_header), *headers]
        if body or method in ("POST", "PUT"):
            out.append(("content-length", str(len(body))))
        return out

    async def aclose(self) -> None:
        """Close every idle connection (and each one a drain saves later)."""
        self._closed = True
        while self._idle:
            await self._idle.pop().aclose()
