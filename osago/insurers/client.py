"""The insurer client port: the asynchronous submit-then-poll protocol, over HTTP.

Transport errors are translated here (and only here) into :class:`InsurerUnavailable`
(transient: transport errors, 5xx, 429, a body that is not JSON) or :class:`InsurerRejected`
(4xx, or JSON that breaks the protocol).
No timeouts here: the caller wraps every call in a cancel scope.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from uuid import UUID

from osago.errors import InsurerRejected, InsurerUnavailable
from osago.insurers._answers import (
    AnswerError,
    clean_breakdown,
    read_correlation_id,
    read_message,
    read_number,
    read_remote_id,
    read_time,
)
from osago.insurers.config import InsurerConfig
from osago.insurers.http11 import HttpTransportError, Response
from osago.models import RawJSON

__all__ = ["HttpInsurerClient", "InsurerClient", "Pending", "Quote", "Transport", "read_answer"]


@dataclass(frozen=True)
class Quote:
    """An insurer's final answer: ``ready`` with a premium, or ``refused`` with a message."""

    correlation_id: UUID
    status: str
    premium: float | None
    message: str | None
    ready_at: float | None
    pool: bool = False
    breakdown: dict[str, Any] | None = None


@dataclass(frozen=True)
class Pending:
    """Not ready yet; ``poll_after``: the insurer asks not to be polled again before that many
    seconds (its Retry-After header or ``poll_after`` field)."""

    poll_after: float | None = None


class InsurerClient(Protocol):
    """Talks to insurers; one instance serves all of them."""

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: RawJSON) -> str:
        """Create a calculation (idempotent by correlation id); return the insurer's id."""
        ...

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        """The final answer, or Pending (with the insurer's hint) while it is calculating."""
        ...


def _poll_after(field: Any, headers: Mapping[str, str]) -> float | None:
    """A pending answer's hint: its ``poll_after`` field, else its Retry-After header."""
    try:
        return max(0.0, read_number(field, "poll_after"))
    except AnswerError:  # absent or not a number: the header may say
        return _retry_after(headers)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in seconds (the HTTP-date form is not used by insurers)."""
    value = headers.get("retry-after", "")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


class Transport(Protocol):
    """One insurer's HTTP connection pool (:class:`~osago.insurers.http11.Http11Pool`)."""

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request to ``target`` (path and query); the whole answer."""
        ...


class HttpInsurerClient:
    """The client against HTTP insurers (and our simulator, which speaks the same protocol).

    One keep-alive pool per insurer (``transports``, by code): one insurer cannot take
    another's connections. The pool is our lean HTTP/1.1 client (see osago/insurers/http11.py
    for why not httpx); its errors are translated here.
    """

    def __init__(self, transports: Mapping[str, Transport]) -> None:
        self._transports = transports

    async def _call(
        self, insurer: InsurerConfig, method: str, path: str, body: bytes = b"", **headers: str
    ) -> tuple[Any, Mapping[str, str]]:
        target = urlsplit(insurer.base_url).path.rstrip("/") + path
        fields = [(k.replace("_", "-"), v) for k, v in headers.items()]
        data = body
        if body:
            fields.append(("content-type", "application/json"))
        try:
            response = await self._transports[insurer.code].request(
                method, target, headers=fields, body=data
            )
        except HttpTransportError as exc:
            raise InsurerUnavailable(insurer.code, f"{method} {target}: {exc}") from exc
        status = response.status
        if status >= 500 or status == 429:
            raise InsurerUnavailable(
                insurer.code,
                f"{method} {target}: HTTP {status}",
                status=status,
                retry_after=_retry_after(response.headers),
            )
        if status >= 400:
            text = response.body[:200].decode(errors="replace")
            raise InsurerRejected(
                insurer.code, f"{method} {target}: HTTP {status}: {text}", status=status
            )
        try:
            return json.loads(response.body), response.headers
        except RecursionError as exc:
            raise InsurerRejected(insurer.code, f"{method} {target}: JSON nested too deep") from exc
        except ValueError as exc:
            # A 200 that is not JSON is a gateway's error page far more often than a broken
            # insurer: transient, and our calls are idempotent, so it is worth a retry.
            raise InsurerUnavailable(insurer.code, f"{method} {target}: body is not JSON") from exc

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: RawJSON) -> str:
        envelope = {"correlation_id": str(correlation_id)} | (
            # Callback mode: where to POST the answer (signed; osago/insurers/callbacks.py).
            {"callback_url": insurer.callback_url} if insurer.callback else {}
        )
        # The stored request goes in as its text (RawJSON): the envelope's last member.
        head = json.dumps(envelope, separators=(",", ":"))
        body = f'{head[:-1]},"request":{request.text}}}'.encode()
        data, _ = await self._call(
            insurer, "POST", "/calculations", body, Idempotency_Key=str(correlation_id)
        )
        try:
            return read_remote_id(data)
        except AnswerError as exc:
            raise InsurerRejected(insurer.code, str(exc)) from exc

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        path = f"/calculations/{quote(remote_id)}"
        if insurer.long_poll:  # the insurer holds the request until ready, or the wait ends
            path += f"?wait={insurer.long_poll_wait:g}"
        data, headers = await self._call(insurer, "GET", path)
        try:
            return read_answer(data, headers)
        except AnswerError as exc:
            raise InsurerRejected(insurer.code, f"unreadable poll answer: {exc}") from exc


def read_answer(data: Any, headers: Mapping[str, str]) -> Quote | Pending:
    """An insurer's answer (a poll's, or a callback's body), checked field by field;
    :class:`AnswerError` when it breaks the protocol."""
    if not isinstance(data, dict):
        raise AnswerError("an answer must be a JSON object")
    status = data.get("status")
    if status == "pending":
        return Pending(_poll_after(data.get("poll_after"), headers))
    if status not in ("ready", "refused"):
        raise AnswerError(f"unknown status {str(status)[:40]!r}")
    return Quote(
        read_correlation_id(data.get("correlation_id")),
        status,
        read_number(data.get("premium"), "premium", positive=True) if status == "ready" else None,
        read_message(data.get("message")),
        read_time(data.get("ready_at"), "ready_at"),
        data.get("pool") is True,
        clean_breakdown(data.get("breakdown")),
    )
