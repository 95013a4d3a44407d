"""The plain ASGI route in front of the api: it serves exactly its POSTs, answers as the
application would, and hands everything else to the application untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from osago.web.asgi_route import JSON, plain_post_route

PREFIX = "/api/v1/callbacks/"


class _App:
    """The application behind the route: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _call(
    asgi: Any,
    path: str,
    *,
    method: str = "POST",
    chunks: tuple[bytes, ...] = (b"{}",),
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[int, Any]:
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    await asgi(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(body) if body else None


class _Seen(list[tuple[str, bytes, str | None]]):
    """What the handler was given."""


def _route(app: _App, seen: _Seen) -> Any:
    async def handle(name: str, body: bytes, signature: str | None) -> tuple[JSON, int]:
        if name == "broken":
            raise RuntimeError("a defect")
        seen.append((name, body, signature))
        return {"status": "accepted"}, 200

    too_large = {"error": "too_large", "message": "at most 1 KiB"}
    return plain_post_route(
        app, prefix=PREFIX, header="X-Sig", max_body=1024, too_large=too_large, handle=handle
    )


async def test_its_posts_never_reach_the_application_and_carry_body_and_header() -> None:
    app, seen = _App(), _Seen()
    route = _route(app, seen)
    status, answer = await _call(
        route, PREFIX + "aurora", chunks=(b'{"a":', b" 1}"), headers=((b"x-sig", b"t=1,v1=ab"),)
    )
    assert (status, answer) == (200, {"status": "accepted"})
    assert seen == [("aurora", b'{"a": 1}', "t=1,v1=ab")]
    assert app.paths == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", PREFIX + "aurora"),  # the application answers 405
        ("POST", PREFIX + "aurora/extra"),  # ... and 404 for these
        ("POST", PREFIX),
        ("POST", "/api/v1/calculations"),
    ],
)
async def test_anything_else_goes_to_the_application(method: str, path: str) -> None:
    app, seen = _App(), _Seen()
    await _call(_route(app, seen), path, method=method)
    assert app.paths == [(method, path)]
    assert seen == []


async def test_a_body_too_large_is_413_declared_or_not_and_a_defect_is_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = _App(), _Seen()
    route = _route(app, seen)
    declared = ((b"content-length", b"5000"),)
    assert (await _call(route, PREFIX + "a", headers=declared))[0] == 413
    status, answer = await _call(route, PREFIX + "a", chunks=(b"x" * 600, b"y" * 600))
    assert (status, answer["error"]) == (413, "too_large")
    status, answer = await _call(route, PREFIX + "broken")
    assert (status, answer["error"]) == (500, "internal")
    assert "a defect" in caplog.text
    assert seen == []
    assert app.paths == []
