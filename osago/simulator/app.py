"""A simulator of insurers: many insurers behind one HTTP server, asynchronous protocol.

    POST /{code}/calculations          Idempotency-Key: <correlation id>  -> {"id", "status"}
                                       (with "callback_url": the answer is POSTed there too)
    GET  /{code}/calculations/{id}[?wait=seconds]                         -> {"status", ...}
    PUT  /_control/{code}              any Behaviour field, or {"down_for": seconds}
    GET  /_control/stats               polls, submits and calculations served so far
    GET  /_control/faulted             per insurer, the correlation ids that met a fault (a
                                       poll's 503, stall or bad body; a lost callback)
    GET  /_control/callbacks           per insurer, each delivered callback's correlation id:
                                       [ready_at, sent_at] (the delivering attempt's start)
    GET  /_control                     every insurer's behaviour

Each insurer prices by the Bank of Russia formula with its own base rate inside the legal
corridor, and behaves as its :class:`Behaviour` says. Every random draw is seeded by
(seed, insurer, correlation id[, poll number]), so the same requests get the same answers in
any order. Every answer carries the time it became ready (``ready_at``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

from osago.clock import Clock
from osago.domain.request import tariff_input
from osago.domain.tariff import CURRENCY, base_corridor, coefficients, premium
from osago.web.http1 import Handler, Request, Response, json_response

__all__ = [
    "REFUSALS",
    "Behaviour",
    "SimulatedCalc",
    "Simulator",
    "garbage",
    "simulator_handler",
]

REFUSALS = (
    "Refused by the insurer's scoring",
    "The registration address could not be verified",
    "A driver's licence was not found in the national database",
    "The vehicle is not in the inspection register",
    "Online sale is not available for this region",
)


@dataclass
class Behaviour:
    """How one insurer behaves; every field can be changed at run time."""

    name: str
    base_fraction: float = 0.5  # where its base rate sits in the corridor, 0..1
    region_fractions: dict[str, float] = field(default_factory=dict)  # territory -> fraction
    median_delay: float = 2.0  # seconds from submit to the answer
    delay_sigma: float = 0.0  # log-normal sigma; 0: always the median
    refusal_rate: float = 0.0
    pool_rate: float = 0.0  # offers through the reinsurance pool (add-ons mandatory)
    error_rate: float = 0.0  # per call: 503 with Retry-After
    hang_rate: float = 0.0  # per calculation: never answers
    stall_rate: float = 0.0  # per poll: the response takes stall_seconds
    stall_seconds: float = 30.0
    malformed_rate: float = 0.0  # per poll: a body outside the protocol
    garbage_rate: float = 0.0  # per ready poll: JSON that breaks the protocol (hostile tests)
    long_poll_max: float = 0.0  # honours ?wait= up to this many seconds (0: answers at once)
    callback_loss_rate: float = 0.0  # per calculation: its callback is never sent
    outages: list[tuple[float, float]] = field(default_factory=list)  # (from, until), wall


@dataclass
class SimulatedCalc:
    """One calculation an insurer made, and how it will answer."""

    id: str
    correlation_id: str
    ready_at: float  # inf: never
    outcome: str  # ready | refused
    premium: float | None
    pool: bool
    message: str | None
    breakdown: dict[str, Any]
    polls: int = 0
    faults: int = 0  # polls answered with a 503, a stall or a malformed body; lost callbacks
    callback_url: str | None = None
    called_back_at: float | None = None  # when the delivered callback's attempt started


@dataclass
class Simulator:
    """State of every simulated insurer."""

    clock: Clock
    behaviours: dict[str, Behaviour]
    seed: int = 0
    calcs: dict[str, dict[str, SimulatedCalc]] = field(default_factory=dict)
    by_key: dict[tuple[str, str], str] = field(default_factory=dict)
    submits: dict[tuple[str, str], int] = field(default_factory=dict)  # attempts per key
    polls: int = 0  # status GETs served, for benches (GET /_control/stats)
    # Set by the role: POSTs a calculation's answer to its callback URL when it is ready.
    schedule_callback: Callable[[str, SimulatedCalc], None] | None = None
    _ids: int = 0

    def rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    @staticmethod
    def final_answer(calc: SimulatedCalc) -> dict[str, Any]:
        """A ready calculation's answer, as a poll or a callback carries it."""
        base = {"id": calc.id, "correlation_id": calc.correlation_id}
        if calc.outcome == "refused":
            return {**base, "status": "refused", "message": calc.message, "ready_at": calc.ready_at}
        return {
            **base,
            "status": "ready",
            "premium": calc.premium,
            "currency": CURRENCY,
            "pool": calc.pool,
            "message": calc.message,
            "breakdown": calc.breakdown,
            "ready_at": calc.ready_at,
        }

    def down(self, code: str) -> float | None:
        """Seconds until the insurer's current outage ends, or None when it is up."""
        now = self.clock.now()
        ends = [until for start, until in self.behaviours[code].outages if start <= now < until]
        return max(ends) - now if ends else None

    def quote(self, code: str, correlation_id: str, req: dict[str, Any]) -> SimulatedCalc:
        """Decide, once and reproducibly, how this insurer answers this request."""
        b = self.behaviours[code]
        rng = self.rng(code, correlation_id)
        delay = b.median_delay
        if b.delay_sigma > 0:
            delay = rng.lognormvariate(math.log(b.median_delay), b.delay_sigma)
        hang = rng.random() < b.hang_rate
        refused = rng.random() < b.refusal_rate
        pool = not refused and rng.random() < b.pool_rate
        t = tariff_input(req)
        breakdown = coefficients(t)
        low, high = base_corridor(t)
        fraction = b.region_fractions.get(breakdown.territory, b.base_fraction)
        base = high if pool else low + (high - low) * min(max(fraction, 0.0), 1.0)
        self._ids += 1
        return SimulatedCalc(
            id=f"{code}-{self._ids}",
            correlation_id=correlation_id,
            ready_at=math.inf if hang else self.clock.now() + delay,
            outcome="refused" if refused else "ready",
            premium=None if refused else premium(base, breakdown),
            pool=pool,
            message=rng.choice(REFUSALS)
            if refused
            else (
                "Offered through the reinsurance pool: add-on products are mandatory"
                if pool
                else None
            ),
            breakdown={**breakdown.to_json(), "base_rate": round(base, 2)},
        )


def garbage(rng: random.Random, calc: SimulatedCalc) -> Any:
    """A ready answer that breaks the protocol, as broken insurers have sent them."""
    ready: dict[str, Any] = {
        "id": calc.id,
        "status": "ready",
        "premium": calc.premium,
        "ready_at": calc.ready_at,
    }
    answers: list[Any] = [
        {**ready, "correlation_id": calc.correlation_id, "ready_at": calc.ready_at * 1000},
        {**ready, "correlation_id": 123},
        {**ready, "correlation_id": calc.correlation_id, "premium": "a lot"},
        [[[[["nested"]]]]],
    ]
    return rng.choice(answers)


def _reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(data, status, tuple((headers or {}).items()))


def simulator_handler(sim: Simulator) -> Handler:
    """The HTTP handler serving ``sim`` (on :func:`osago.web.http1.serve_http`)."""

    def unavailable(code: str, rng: random.Random) -> Response | None:
        """A 503 when the insurer is down or draws a transient error; else None."""
        left = sim.down(code)
        if left is not None:  # a hint only for an outage with a known end
            hint = {"Retry-After": f"{left:.0f}"} if math.isfinite(left) else {}
            return _reply({"error": "down for maintenance"}, 503, hint)
        if rng.random() < sim.behaviours[code].error_rate:
            return _reply({"error": "temporarily unavailable"}, 503, {"Retry-After": "1"})
        return None

    async def submit(code: str, request: Request) -> Response:
        if code not in sim.behaviours:
            return _reply({"error": f"unknown insurer {code}"}, 404)
        body = request.json()
        if not isinstance(body, dict) or "correlation_id" not in body:
            return _reply({"error": "correlation_id is required"}, 400)
        callback = body.get("callback_url")
        if callback is not None and (
            not isinstance(callback, str) or urlsplit(callback).scheme not in ("http", "https")
        ):
            return _reply({"error": "callback_url must be an http(s) URL"}, 400)
        key = request.headers.get("idempotency-key") or str(body["correlation_id"])
        # Each attempt draws anew (seeded by its number): a retried submit can succeed.
        attempt = sim.submits[(code, key)] = sim.submits.get((code, key), 0) + 1
        if (failure := unavailable(code, sim.rng(code, key, "submit", attempt))) is not None:
            return failure
        existing = sim.by_key.get((code, key))
        if existing is not None:
            return _reply({"id": existing, "status": "accepted"})
        try:
            calc = sim.quote(code, str(body["correlation_id"]), body.get("request") or {})
        except (KeyError, TypeError, ValueError) as exc:
            return _reply({"error": f"cannot price this request: {exc!r}"}, 400)
        sim.calcs.setdefault(code, {})[calc.id] = calc
        sim.by_key[(code, key)] = calc.id
        if callback is not None and sim.schedule_callback is not None:
            calc.callback_url = callback
            sim.schedule_callback(code, calc)
        return _reply({"id": calc.id, "status": "accepted"}, 201)

    async def poll(code: str, calc_id: str, request: Request) -> Response:
        b = sim.behaviours.get(code)
        calc = sim.calcs.get(code, {}).get(calc_id)
        if b is None or calc is None:
            return _reply({"error": f"unknown calculation {code}/{calc_id}"}, 404)
        calc.polls += 1
        sim.polls += 1
        rng = sim.rng(code, calc.id, calc.polls)
        if (failure := unavailable(code, rng)) is not None:
            calc.faults += 1
            return failure
        if rng.random() < b.stall_rate:
            calc.faults += 1
            await trio.sleep(b.stall_seconds)
        try:
            asked = float(request.query.get("wait", 0.0))
        except ValueError:
            asked = 0.0
        wait = min(asked, b.long_poll_max)
        if wait > 0 and sim.clock.now() < calc.ready_at:  # a long poll: hold it until ready
            await trio.sleep(min(wait, calc.ready_at - sim.clock.now()))
        if rng.random() < b.malformed_rate:
            calc.faults += 1
            page = b"<html><body>Internal gateway page</body></html>"
            return Response(200, page, "text/html; charset=utf-8")
        base = {"id": calc.id, "correlation_id": calc.correlation_id}
        if sim.clock.now() < calc.ready_at:
            return _reply({**base, "status": "pending"})
        if rng.random() < b.garbage_rate:
            return _reply(garbage(rng, calc))
        return _reply(sim.final_answer(calc))

    def control(code: str, request: Request) -> Response:
        b = sim.behaviours.get(code)
        if b is None:
            return _reply({"error": f"unknown insurer {code}"}, 404)
        body = request.json()
        if not isinstance(body, dict):
            return _reply({"error": "body must be a JSON object"}, 400)
        known = set(asdict(b))
        unknown = set(body) - known - {"down_for", "delay", "fail"}
        if unknown:
            return _reply({"error": f"unknown fields {sorted(unknown)}"}, 400)
        for key, value in body.items():
            if key == "down_for":
                now = sim.clock.now()
                b.outages.append((now, now + float(value)))
            elif key == "delay":  # shorthand: a fixed delay
                b.median_delay, b.delay_sigma = float(value), 0.0
            elif key == "fail":  # shorthand: down until told otherwise
                b.outages = [(0.0, math.inf)] if value else []
            elif key == "outages":
                b.outages = [(float(s), float(u)) for s, u in value]
            else:
                setattr(b, key, type(getattr(b, key))(value))
        return _reply(asdict(b))

    def stats() -> Response:
        return _reply(
            {
                "polls": sim.polls,
                "submits": sum(sim.submits.values()),
                "calculations": sum(len(c) for c in sim.calcs.values()),
            }
        )

    def faulted() -> Response:
        # Which exchanges met a fault: a bench tells the wait our schedule and path add from
        # the wait an insurer's own 503s (Retry-After is honoured), stalls, garbage and lost
        # callbacks (found by the safety poll) add.
        return _reply(
            {
                code: [c.correlation_id for c in calcs.values() if c.faults]
                for code, calcs in sim.calcs.items()
            }
        )

    def callbacks() -> Response:
        # When each delivered callback left, against when its answer was ready: a bench
        # tells the simulator's own lag (its loop is busy serving polls) from ours.
        return _reply(
            {
                code: {
                    c.correlation_id: [c.ready_at, c.called_back_at]
                    for c in calcs.values()
                    if c.called_back_at is not None
                }
                for code, calcs in sim.calcs.items()
            }
        )

    async def handle(request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        match request.method, parts:
            case "POST", [code, "calculations"] if code != "_control":
                return await submit(code, request)
            case "GET", [code, "calculations", calc_id] if code != "_control":
                return await poll(code, calc_id, request)
            case "PUT", ["_control", code]:
                return control(code, request)
            case "GET", ["_control", "stats"]:
                return stats()
            case "GET", ["_control", "faulted"]:
                return faulted()
            case "GET", ["_control", "callbacks"]:
                return callbacks()
            case "GET", ["_control"]:
                return _reply({code: asdict(b) for code, b in sim.behaviours.items()})
        return _reply({"error": "not found"}, 404)

    return handle
