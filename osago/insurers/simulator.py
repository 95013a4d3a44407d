"""A simulator of insurers: many insurers behind one HTTP server, asynchronous protocol.

    POST /{code}/calculations          Idempotency-Key: <correlation id>   -> {"id", "status"}
    GET  /{code}/calculations/{id}                                         -> {"status", ...}
    PUT  /_control/{code}              {"delay": s, "refuse": bool, "fail": bool}
    GET  /_control                     every insurer's behaviour

An answer becomes ready ``delay`` seconds after the submit; every answer carries the time it
became ready (``ready_at``). Behaviour can be changed while running (tests, benches).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from quart import request
from quart_trio import QuartTrio

from osago.clock import Clock

__all__ = ["Behaviour", "Simulator", "create_simulator_app"]


@dataclass
class Behaviour:
    """How one insurer behaves; mutable at run time through the control endpoint."""

    name: str
    base_rate: float
    delay: float = 0.5
    refuse: bool = False
    fail: bool = False


@dataclass
class _Calc:
    id: str
    correlation_id: str
    created_at: float
    ready_at: float
    premium: float | None
    refused: bool


@dataclass
class Simulator:
    """State of every simulated insurer."""

    clock: Clock
    behaviours: dict[str, Behaviour]
    calcs: dict[str, dict[str, _Calc]] = field(default_factory=dict)
    by_key: dict[tuple[str, str], str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def premium(self, code: str, req: dict[str, Any]) -> float:
        """A stand-in premium: the insurer's base rate scaled by engine power."""
        hp = float(req.get("vehicle", {}).get("engine_power_hp", 100))
        return round(self.behaviours[code].base_rate * (1.0 + hp / 250.0), 2)


def create_simulator_app(sim: Simulator) -> QuartTrio:
    """The Quart-Trio app serving ``sim``."""
    app = QuartTrio("osago-insurers")

    def unknown(code: str) -> tuple[dict[str, str], int]:
        return {"error": f"unknown insurer {code}"}, 404

    @app.post("/<code>/calculations")
    async def submit(code: str) -> Any:
        b = sim.behaviours.get(code)
        if b is None:
            return unknown(code)
        if b.fail:
            return {"error": "service unavailable"}, 503
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or "correlation_id" not in body:
            return {"error": "correlation_id is required"}, 400
        key = request.headers.get("Idempotency-Key") or body["correlation_id"]
        existing = sim.by_key.get((code, key))
        if existing is not None:
            return {"id": existing, "status": "accepted"}, 200
        now = sim.clock.now()
        calc = _Calc(
            f"{code}-{next(sim._ids)}",
            str(body["correlation_id"]),
            now,
            now + b.delay,
            sim.premium(code, body.get("request") or {}),
            b.refuse,
        )
        sim.calcs.setdefault(code, {})[calc.id] = calc
        sim.by_key[(code, key)] = calc.id
        return {"id": calc.id, "status": "accepted"}, 201

    @app.get("/<code>/calculations/<calc_id>")
    async def poll(code: str, calc_id: str) -> Any:
        b = sim.behaviours.get(code)
        if b is None:
            return unknown(code)
        if b.fail:
            return {"error": "service unavailable"}, 503
        calc = sim.calcs.get(code, {}).get(calc_id)
        if calc is None:
            return {"error": f"unknown calculation {calc_id}"}, 404
        base = {"id": calc.id, "correlation_id": calc.correlation_id}
        if sim.clock.now() < calc.ready_at:
            return {**base, "status": "pending"}
        if calc.refused:
            return {
                **base,
                "status": "refused",
                "message": "Refused by scoring",
                "ready_at": calc.ready_at,
            }
        return {
            **base,
            "status": "ready",
            "premium": calc.premium,
            "currency": "RUB",
            "ready_at": calc.ready_at,
        }

    @app.put("/_control/<code>")
    async def control(code: str) -> Any:
        b = sim.behaviours.get(code)
        if b is None:
            return unknown(code)
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            return {"error": "body must be a JSON object"}, 400
        for key in ("delay", "base_rate"):
            if key in body:
                setattr(b, key, float(body[key]))
        for key in ("refuse", "fail"):
            if key in body:
                setattr(b, key, bool(body[key]))
        return asdict(b)

    @app.get("/_control")
    async def behaviours() -> Any:
        return {code: asdict(b) for code, b in sim.behaviours.items()}

    return app
