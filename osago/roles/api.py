"""The api role: the REST endpoints (Quart-Trio on Hypercorn) and the outbox relay."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from osago.domain.request import request_hash, validate_request
from osago.domain.stub import stub_for
from osago.errors import ConflictError, StoreError, ValidationFailed
from osago.models import NewCalculation, NewExchange, iso
from osago.roles import relay
from osago.roles._deps import ApiDeps
from osago.roles._dev import add_dev_routes
from osago.roles._openapi import openapi_document

__all__ = ["create_app", "hypercorn_config", "run"]

log = logging.getLogger("osago.api")


def create_app(deps: ApiDeps) -> QuartTrio:
    """The Quart-Trio application of the api role."""
    app = QuartTrio("osago-api")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a quote request is a few hundred bytes
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

    @app.errorhandler(413)
    async def too_large(_: Exception) -> Any:
        return {"error": "too_large", "message": "the body must be at most 64 KiB"}, 413

    @app.errorhandler(ConflictError)
    async def conflict(exc: ConflictError) -> Any:
        return {"error": "conflict", "message": str(exc)}, 409

    @app.errorhandler(StoreError)
    async def store_down(exc: StoreError) -> Any:
        log.error("api: %s", exc)
        return {"error": "unavailable", "message": "storage is unavailable, retry later"}, 503

    @app.post("/api/v1/calculations")
    async def create() -> Any:
        body = await request.get_json(force=True, silent=True)
        if body is None:
            return {"error": "bad_request", "message": "body must be JSON"}, 400
        now = deps.clock.now()
        valid = validate_request(body, today=datetime.fromtimestamp(now, UTC).date())
        calc = NewCalculation(
            id=uuid.UUID(valid["request_id"]) if valid.get("request_id") else uuid.uuid4(),
            user_id=valid["user_id"],
            request=valid,
            created_at=now,
            deadline_at=now + s.deadline_seconds,
            exchanges=tuple(NewExchange(uuid.uuid4(), i.code, i.name) for i in insurers),
            stub=stub_for(valid, s.deadline_seconds),
            request_hash=request_hash(valid),
            closes_at=now + s.deadline_seconds + s.late_window_seconds,
        )
        created = await deps.store.create_calculation(calc, queue=s.requests_queue)
        headers = {"Location": f"/api/v1/calculations/{calc.id}"}
        if not created:  # the same request again: answer as the first time
            view = await deps.store.get_calculation(calc.id)
            assert view is not None
            headers["Idempotent-Replayed"] = "true"
            return (
                {
                    "calculation_id": str(view.id),
                    "status": view.to_json()["status"],
                    "created_at": iso(view.created_at),
                    "deadline_at": iso(view.deadline_at),
                    "insurers": [e.insurer for e in view.exchanges],
                },
                202,
                headers,
            )
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
                "created_at": iso(calc.created_at),
                "deadline_at": iso(calc.deadline_at),
                "insurers": [i.code for i in insurers],
            },
            202,
            headers,
        )

    @app.get("/api/v1/openapi.json")
    async def openapi() -> Any:
        return openapi_document()

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

    if s.dev_endpoints:
        add_dev_routes(app, deps)

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
