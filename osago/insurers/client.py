"""The insurer client port: the asynchronous submit-then-poll protocol, over HTTP.

httpx errors are translated here (and only here) into :class:`InsurerUnavailable`
(transient: transport errors, 5xx, 429, a body that is not JSON) or :class:`InsurerRejected`
(4xx, or JSON that breaks the protocol).
No timeouts here: the caller wraps every call in a cancel scope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import httpx

from osago.errors import InsurerRejected, InsurerUnavailable
from osago.insurers.config import InsurerConfig

__all__ = ["HttpInsurerClient", "InsurerClient", "Pending", "Quote"]


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

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: Any) -> str:
        """Create a calculation (idempotent by correlation id); return the insurer's id."""
        ...

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        """The final answer, or Pending (with the insurer's hint) while it is calculating."""
        ...


def _poll_after(field: Any, headers: httpx.Headers) -> float | None:
    """A pending answer's hint: its ``poll_after`` field, else its Retry-After header."""
    if isinstance(field, int | float) and not isinstance(field, bool):
        value = float(field)
        return max(0.0, value) if math.isfinite(value) else None
    return _retry_after(headers)


def _retry_after(headers: httpx.Headers) -> float | None:
    """The Retry-After header in seconds (the HTTP-date form is not used by insurers)."""
    value = headers.get("Retry-After", "")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


class HttpInsurerClient:
    """The client against HTTP insurers (and our simulator, which speaks the same protocol).

    One httpx client per insurer (``clients``, by code), its pool sized to that insurer's
    bulkhead. Why not one shared pool: httpcore walks every pooled connection on each
    request (encode/httpcore#1035); a pool of ten insurers' connections made that walk most
    of a worker's CPU. Small pools keep it short, and one insurer cannot take another's
    connections.
    """

    def __init__(self, clients: Mapping[str, httpx.AsyncClient]) -> None:
        self._clients = clients

    async def _call(
        self, insurer: InsurerConfig, method: str, url: str, **kw: Any
    ) -> tuple[Any, httpx.Headers]:
        try:
            response = await self._clients[insurer.code].request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise InsurerUnavailable(insurer.code, f"{method} {url}: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise InsurerUnavailable(
                insurer.code,
                f"{method} {url}: HTTP {response.status_code}",
                status=response.status_code,
                retry_after=_retry_after(response.headers),
            )
        if response.status_code >= 400:
            raise InsurerRejected(
                insurer.code,
                f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}",
                status=response.status_code,
            )
        try:
            return response.json(), response.headers
        except ValueError as exc:
            # A 200 that is not JSON is a gateway's error page far more often than a broken
            # insurer: transient, and our calls are idempotent, so it is worth a retry.
            raise InsurerUnavailable(insurer.code, f"{method} {url}: body is not JSON") from exc

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: Any) -> str:
        data, _ = await self._call(
            insurer,
            "POST",
            f"{insurer.base_url}/calculations",
            json={"correlation_id": str(correlation_id), "request": request},
            headers={"Idempotency-Key": str(correlation_id)},
        )
        try:
            return str(data["id"])
        except (KeyError, TypeError) as exc:
            raise InsurerRejected(insurer.code, f"submit answer has no id: {data!r}") from exc

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        data, headers = await self._call(
            insurer, "GET", f"{insurer.base_url}/calculations/{remote_id}"
        )
        try:
            status = data["status"]
            if status == "pending":
                return Pending(_poll_after(data.get("poll_after"), headers))
            if status not in ("ready", "refused"):
                raise ValueError(f"unknown status {status!r}")
            premium = float(data["premium"]) if status == "ready" else None
            breakdown = data.get("breakdown")
            return Quote(
                UUID(data["correlation_id"]),
                status,
                premium,
                data.get("message"),
                data.get("ready_at"),
                bool(data.get("pool", False)),
                breakdown if isinstance(breakdown, dict) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InsurerRejected(insurer.code, f"unreadable poll answer {data!r}: {exc}") from exc
