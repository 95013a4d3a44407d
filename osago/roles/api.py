"""The api role: the REST endpoints (Quart-Trio on Hypercorn) and the outbox relay."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from osago.errors import StoreError, ValidationFailed
from osago.models import NewCalculation, NewExchange, iso
from osago.roles import relay
from osago.roles._deps import ApiDeps
from osago.validation import validate_request

__all__ = ["create_app", "hypercorn_config", "run"]

log = logging.getLogger("osago.api")


def _stub(deadline: float) -> dict[str, Any]:
    return {
        "reason": "no_offers",
        "message": f"No insurer answered within {deadline:g} seconds. Please try again later.",
    }


def create_app(deps: ApiDeps) -> QuartTrio:
    """The Quart-Trio application of the api role."""
    app = QuartTrio("osago-api")
    s = deps.settings
    insurers = s.insurers()

    @app.before_request
    async def authorise() -> Any:
        if (
            s.api_token
            and request.path.startswith("/api/")
            and request.headers.get("Authorization") != f"Bearer {s.api_token}"
        ):
            return {"error": "unauthorized", "message": "a valid Bearer token is required"}, 401
        return None

    @app.errorhandler(ValidationFailed)
    async def invalid(exc: ValidationFailed) -> Any:
        return {
            "error": "validation_failed",
            "errors": [{"field": e.field, "message": e.message} for e in exc.errors],
        }, 422

    @app.errorhandler(StoreError)
    async def store_down(exc: StoreError) -> Any:
        log.error("api: %s", exc)
        return {"error": "unavailable", "message": "storage is unavailable, retry later"}, 503

    @app.post("/api/v1/calculations")
    async def create() -> Any:
        body = await request.get_json(force=True, silent=True)
        if body is None:
            return {"error": "bad_request", "message": "body must be JSON"}, 400
        valid = validate_request(body)
        now = deps.clock.now()
        calc = NewCalculation(
            id=uuid.uuid4(),
            user_id=valid["user_id"],
            request=valid,
            created_at=now,
            deadline_at=now + s.deadline_seconds,
            exchanges=tuple(NewExchange(uuid.uuid4(), i.code, i.name) for i in insurers),
            stub=_stub(s.deadline_seconds),
        )
        await deps.store.create_calculation(calc, queue=s.requests_queue)
        log.info(
            "calculation %s: accepted for user %s, %d insurers, deadline %s",
            calc.id,
            calc.user_id,
            len(insurers),
            iso(calc.deadline_at),
        )
        return (
            {
                "calculation_id": str(calc.id),
                "status": "pending",
                "deadline_at": iso(calc.deadline_at),
                "insurers": [i.code for i in insurers],
            },
            202,
            {"Location": f"/api/v1/calculations/{calc.id}"},
        )

    @app.get("/api/v1/calculations/<calculation_id>")
    async def show(calculation_id: str) -> Any:
        try:
            cid = uuid.UUID(calculation_id)
        except ValueError:
            return {"error": "not_found", "message": "no such calculation"}, 404
        view = await deps.store.get_calculation(cid)
        if view is None:
            return {"error": "not_found", "message": "no such calculation"}, 404
        return view.to_json()

    @app.get("/healthz")
    async def health() -> Any:
        return {"status": "ok"}

    return app


def hypercorn_config(bind: str, grace: float) -> Config:
    """Hypercorn settings shared by our HTTP roles."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = grace
    return config


async def run(
    deps: ApiDeps, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the api and run the relay until ``deps.stop``; started() gives the base URL."""
    config = hypercorn_config(str(deps.settings.api_bind), deps.settings.shutdown_grace)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run, deps)
        binds = await nursery.start(
            lambda task_status: serve(
                create_app(deps), config, shutdown_trigger=deps.stop.wait, task_status=task_status
            )
        )
        log.info("api listening on %s", binds[0])
        task_status.started(binds[0])
