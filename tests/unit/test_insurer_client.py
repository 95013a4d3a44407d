"""The HTTP insurer client translates what insurers send into our error tree."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from osago.errors import InsurerRejected, InsurerUnavailable
from osago.insurers import HttpInsurerClient, InsurerConfig, Pending
from osago.insurers.http11 import Response
from osago.models import RawJSON

INSURER = InsurerConfig(code="x", name="X", base_url="http://insurer.test/x")


class Canned:
    """A transport that answers every request the same way, and remembers the requests."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.answer = Response(status, {k.lower(): v for k, v in headers.items()}, body)
        self.sent: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        self.sent.append((method, target, headers or [], body))
        return self.answer


def client(status: int, body: bytes, headers: dict[str, str] | None = None) -> HttpInsurerClient:
    return HttpInsurerClient({INSURER.code: Canned(status, body, headers or {})})


async def test_requests_carry_the_path_the_body_and_the_idempotency_key() -> None:
    transport = Canned(201, b'{"id": "r-1", "status": "pending"}', {})
    c = HttpInsurerClient({INSURER.code: transport})
    cid = uuid.uuid4()
    stored = '{"b": [1, 2], "a": {"c": "\\u0439"}}'  # jsonb's text: spaces, escapes
    assert await c.submit(INSURER, cid, RawJSON(stored)) == "r-1"
    method, target, headers, body = transport.sent[0]
    assert (method, target) == ("POST", "/x/calculations")
    assert ("Idempotency-Key", str(cid)) in headers
    assert ("content-type", "application/json") in headers
    sent = json.loads(body)
    assert sent == {"correlation_id": str(cid), "request": {"b": [1, 2], "a": {"c": "\u0439"}}}
    assert stored.encode() in body  # passed on as stored, not decoded and encoded again
    callback = replace(INSURER, mode="callback", callback_url="http://us.test/cb/x")
    await c.submit(callback, cid, RawJSON("{}"))
    assert json.loads(transport.sent[1][3])["callback_url"] == "http://us.test/cb/x"
    await c.poll(INSURER, "r 1/2")
    assert transport.sent[2][:2] == ("GET", "/x/calculations/r%201/2")


async def test_503_is_transient_with_its_retry_after() -> None:
    with pytest.raises(InsurerUnavailable) as info:
        await client(503, b"{}", {"Retry-After": "7"}).poll(INSURER, "1")
    assert (info.value.status, info.value.retry_after) == (503, 7.0)


async def test_a_gateway_page_is_transient() -> None:
    with pytest.raises(InsurerUnavailable, match="not JSON"):
        await client(200, b"<html>bad gateway</html>").poll(INSURER, "1")


async def test_4xx_and_protocol_breaches_are_rejections() -> None:
    with pytest.raises(InsurerRejected):
        await client(400, b'{"error": "no"}').submit(INSURER, uuid.uuid4(), RawJSON("{}"))
    with pytest.raises(InsurerRejected, match="unreadable"):
        await client(200, b'{"status": "weird"}').poll(INSURER, "1")
    with pytest.raises(InsurerRejected, match="no id"):
        await client(201, b'{"status": "accepted"}').submit(INSURER, uuid.uuid4(), RawJSON("{}"))


async def test_a_ready_answer_is_parsed() -> None:
    cid = uuid.uuid4()
    body = (
        b'{"status": "ready", "premium": 5000.5, "correlation_id": "%s", "pool": true,'
        b' "breakdown": {"kt": 1.8}, "ready_at": 1790000012.5}' % str(cid).encode()
    )
    quote = await client(200, body).poll(INSURER, "1")
    assert quote is not None
    assert (quote.premium, quote.pool, quote.breakdown, quote.ready_at) == (
        5000.5,
        True,
        {"kt": 1.8},
        1790000012.5,
    )
    assert await client(200, b'{"status": "pending"}').poll(INSURER, "1") == Pending()


async def test_a_pending_answer_carries_the_insurers_hint() -> None:
    field = b'{"status": "pending", "poll_after": 2.5}'
    assert await client(200, field).poll(INSURER, "1") == Pending(2.5)
    header = client(200, b'{"status": "pending"}', {"Retry-After": "3"})
    assert await header.poll(INSURER, "1") == Pending(3.0)
    nonsense = b'{"status": "pending", "poll_after": "soon"}'
    assert await client(200, nonsense).poll(INSURER, "1") == Pending()


async def test_a_nonsense_retry_after_is_ignored() -> None:
    for hint in ("inf", "soon", "-3"):
        with pytest.raises(InsurerUnavailable) as info:
            await client(503, b"{}", {"Retry-After": hint}).poll(INSURER, "1")
        assert info.value.retry_after in (None, 0.0)
