"""Test doubles that are not twins of a port we ship: a scripted insurer client."""

from __future__ import annotations

import json as json_module
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import trio

from osago.clock import Clock
from osago.errors import InsurerUnavailable
from osago.insurers import InsurerConfig, Pending, Quote
from osago.web.http1 import Handler, Request


@dataclass
class FakeInsurers:
    """Each insurer answers ``delays[code]`` seconds after the submit (Trio time)."""

    clock: Clock
    delays: dict[str, float]
    refuse: set[str] = field(default_factory=set)
    flaky_polls: dict[str, int] = field(default_factory=dict)  # code -> failures to inject
    down: set[str] = field(default_factory=set)  # every call fails with a 503
    hints: dict[str, float] = field(default_factory=dict)  # code -> poll_after when pending
    # code -> seconds between creating the calculation and the submit's answer arriving
    submit_latency: dict[str, float] = field(default_factory=dict)
    poll_times: list[tuple[str, float]] = field(default_factory=list)  # (code, Trio time)
    submits: list[tuple[str, UUID]] = field(default_factory=list)
    polls: int = 0
    _calcs: dict[str, tuple[UUID, float, str]] = field(default_factory=dict)

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: Any) -> str:
        await trio.lowlevel.checkpoint()
        if insurer.code in self.down:
            raise InsurerUnavailable(insurer.code, "down", status=503)
        self.submits.append((insurer.code, correlation_id))
        remote = f"{insurer.code}-{correlation_id}"
        if remote not in self._calcs:
            ready = self.clock.now() + self.delays[insurer.code]
            self._calcs[remote] = (correlation_id, ready, insurer.code)
        await trio.sleep(self.submit_latency.get(insurer.code, 0.0))
        return remote

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        await trio.lowlevel.checkpoint()
        self.polls += 1
        self.poll_times.append((insurer.code, trio.current_time()))
        if insurer.code in self.down:
            raise InsurerUnavailable(insurer.code, "down", status=503)
        if self.flaky_polls.get(insurer.code, 0) > 0:
            self.flaky_polls[insurer.code] -= 1
            raise InsurerUnavailable(insurer.code, "injected 503", status=503)
        correlation_id, ready, code = self._calcs[remote_id]
        if self.clock.now() < ready:
            return Pending(self.hints.get(code))
        if code in self.refuse:
            return Quote(correlation_id, "refused", None, "scoring refusal", ready)
        return Quote(correlation_id, "ready", 1000.0 + 100 * len(code), None, ready)


@dataclass
class HandlerReply:
    """What :class:`HandlerClient` answers, shaped like a test client's response."""

    status_code: int
    headers: dict[str, str]
    body: bytes

    async def get_json(self, silent: bool = False) -> Any:
        try:
            return json_module.loads(self.body)
        except ValueError:
            if silent:
                return None
            raise

    async def get_data(self) -> bytes:
        return self.body


@dataclass
class HandlerClient:
    """Calls an :mod:`osago.web.http1` handler in-process, as a test client would."""

    handler: Handler

    async def open(
        self, method: str, target: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> HandlerReply:
        path, _, query = target.partition("?")
        response = await self.handler(
            Request(
                method,
                path,
                dict(parse_qsl(query)),
                {k.lower(): v for k, v in (headers or {}).items()},
                b"" if json is None else json_module.dumps(json).encode(),
            )
        )
        head = {k.lower(): v for k, v in response.headers}
        return HandlerReply(
            response.status, {"content-type": response.content_type, **head}, response.body
        )

    async def get(self, target: str, **kw: Any) -> HandlerReply:
        return await self.open("GET", target, **kw)

    async def post(self, target: str, **kw: Any) -> HandlerReply:
        return await self.open("POST", target, **kw)

    async def put(self, target: str, **kw: Any) -> HandlerReply:
        return await self.open("PUT", target, **kw)
