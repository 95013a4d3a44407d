"""The api role: the REST endpoints (Quart-Trio on Hypercorn; a new calculation and insurers'
callbacks in plain ASGI in front of it) and the outbox relay."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from osago.batching import Deferred
from osago.domain.dates import moscow_today
from osago.errors import StoreError, TokenError
from osago.loops import relay
from osago.models import CalculationView, OutboxMessage
from osago.outbox import publisher, sent_marks
from osago.roles._answers import Answers
from osago.roles._callbacks import (
    CALLBACKS_PREFIX,
    add_callback_routes,
    callback_handler,
    serve_callbacks,
)
from osago.roles._create import CALCULATIONS, METHOD_NOT_ALLOWED, create_handler
from osago.roles._deps import ApiDeps
from osago.roles._dev import add_dev_routes
from osago.roles._openapi import openapi_document
from osago.roles._ops import add_ops_routes
from osago.roles._replies import MAX_BODY, store_down, too_large, unauthorized
from osago.timeline import timeline
from osago.tokens import bearer_matches, verify_token
from osago.web.asgi_route import Handler, plain_post_at
from osago.web.server import hypercorn_config
from osago.workload import WorkerLoads, watch_workers

__all__ = ["Served", "create_app", "run", "watch_pickup", "watch_publishing"]

log = logging.getLogger("osago.api")


@dataclass(frozen=True)
class Served:
    """Where a running api listens: its base URL, and where it serves insurers' callbacks
    on a listener of their own (None: under ``api`` only)."""

    api: str
    callbacks: str | None = None


_MISSING = {"error": "not_found", "message": "no such calculation"}, 404


def create_app(
    deps: ApiDeps,
    jobs: Deferred[OutboxMessage] | None = None,
    answers: Answers | None = None,
    callbacks: Handler | None = None,
) -> QuartTrio:
    """The Quart-Trio application of the api role.

    With ``jobs`` each calculation's jobs are leased to this api and handed to ``jobs`` to
    publish at once; without, they wait in the outbox for a relay. With ``answers``
    (running), callbacks share transactions. ``callbacks``: the handler of insurers'
    callbacks, when the api serves them elsewhere too (None: one made here).
    """
    app = QuartTrio("osago-api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    s = deps.settings

    def core_app() -> bool:
        """The request carries OSAGO_API_TOKEN."""
        return bearer_matches(s.api_token, request.headers.get("Authorization"))

    def user_of_token() -> str | None:
        """The user a valid WebSocket token (Bearer, or ?token=) speaks for."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        token = token or request.args.get("token", "")
        try:
            return verify_token(s.ws_secret, token, now=deps.clock.now()).user_id
        except TokenError:
            return None

    async def stored(calculation_id: str) -> CalculationView | None:
        """The calculation a path names; None for an unknown id or one that is not an id."""
        try:
            cid = uuid.UUID(calculation_id)
        except ValueError:
            return None
        return await deps.store.get_calculation(cid)

    @app.before_request
    async def authorise() -> Any:
        # Reading a calculation is decided in `show` (a user may read their own); insurers'
        # callbacks carry their own signatures (osago/roles/_callbacks.py); a new
        # calculation's POST never reaches Quart: its plain route checks the token itself
        # (osago/roles/_create.py).
        reading = request.method == "GET" and request.path.startswith("/api/v1/calculations/")
        called_back = request.path.startswith(CALLBACKS_PREFIX)
        if (
            s.api_token
            and request.path.startswith("/api/")
            and not (reading or called_back)
            and not core_app()
        ):
            return unauthorized(), 401
        return None

    @app.errorhandler(413)
    async def body_too_large(_: Exception) -> Any:
        return too_large(), 413

    @app.errorhandler(StoreError)
    async def storage_unavailable(exc: StoreError) -> Any:
        log.error("api: %s", exc)
        return store_down(), 503

    @app.get("/api/v1/openapi.json")
    async def openapi() -> Any:
        return openapi_document(moscow_today(deps.clock.now()))

    @app.get("/api/v1/calculations/<calculation_id>")
    async def show(calculation_id: str) -> Any:
        """The core application (OSAGO_API_TOKEN) reads any calculation; a user, with the
        token that opens their WebSocket, reads their own only; nobody else reads any (a
        calculation holds the user's documents): 401 without a credential, 404 for
        another user's, so ids cannot be probed."""
        core = core_app()
        reader = None if core else user_of_token()
        if not core and reader is None:
            return {
                "error": "unauthorized",
                "message": "send the core application's Bearer token or the user's own token",
            }, 401
        view = await stored(calculation_id)
        if view is None or (reader is not None and view.user_id != reader):
            return _MISSING
        return view.to_json()

    @app.get("/api/v1/calculations/<calculation_id>/timeline")
    async def history(calculation_id: str) -> Any:
        """For support, behind the core application's token only: what happened to this
        calculation and when (see :mod:`osago.timeline`)."""
        if not core_app():
            return {
                "error": "unauthorized",
                "message": "the core application's Bearer token (OSAGO_API_TOKEN) is required",
            }, 401
        view = await stored(calculation_id)
        if view is None:
            return _MISSING
        traces = await deps.store.outbox_of(view.id)
        trail = await deps.store.trail_of(view.id)
        return {
            "calculation_id": str(view.id),
            "timeline": timeline(view, traces, trail, queue=s.requests_queue),
        }

    add_callback_routes(app, callbacks or callback_handler(deps, jobs, answers))
    app.asgi_app = plain_post_at(  # type: ignore[method-assign,assignment]
        app.asgi_app,
        path=CALCULATIONS,
        header="Authorization",
        max_body=MAX_BODY,
        too_large=too_large(),
        not_allowed=METHOD_NOT_ALLOWED,
        handle=create_handler(deps, jobs),
    )
    if s.dev_endpoints:
        add_dev_routes(app, deps)
    if s.dev_endpoints or s.ops_page:
        add_ops_routes(app, deps)

    @app.get("/healthz")
    async def health() -> Any:
        return {"status": "ok"}

    return app


def watch_publishing(deps: ApiDeps, jobs: Deferred[OutboxMessage]) -> None:
    """Admission, and the gauge an operator watches, read how far ``jobs`` is behind."""
    deps.backlog.unpublished = jobs.oldest_wait
    deps.metrics.jobs_unpublished_age.set_function(jobs.oldest_wait)


def watch_pickup(deps: ApiDeps, loads: WorkerLoads) -> None:
    """Admission, and the gauge an operator watches, read the workers' reports in ``loads``."""
    deps.backlog.pickup = loads.highest_wait
    deps.metrics.workers_pickup_wait.set_function(loads.highest_wait)


async def run(
    deps: ApiDeps, *, task_status: trio.TaskStatus[Served] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the api until ``deps.stop``; started() gives where (:class:`Served`).

    Beside it: the publisher of the jobs it accepts, a relay on its safety tick for rows
    whose lease ran out (a crash between commit and publish, or the broker away), and with
    ``callbacks_bind`` insurers' callbacks on a listener of their own. That one stops after
    the api has drained: a callback during the drain is still taken.
    """
    s = deps.settings
    config = hypercorn_config(str(s.api_bind), s.shutdown_grace)
    marks = sent_marks(
        deps.store, deps.clock, linger=s.write_linger, cleanup_timeout=s.cleanup_timeout
    )
    jobs = publisher(
        "jobs", deps.broker, deps.store, deps.clock, marks, cleanup_timeout=s.cleanup_timeout
    )
    watch_publishing(deps, jobs)
    loads = WorkerLoads()
    watch_pickup(deps, loads)
    answers = Answers.of(
        deps.store,
        deps.clock,
        topic=s.results_topic,
        lease=s.outbox_lease,
        settle_linger=s.callback_settle_linger,
        publish=jobs.add,
    )
    async with trio.open_nursery() as marking:  # outlives the publishers: their marks land
        await marking.start(marks.run)
        async with trio.open_nursery() as background:
            await background.start(jobs.run)
            await background.start(answers.run)
            await background.start(watch_workers, deps.broker, s.load_topic, loads)
            await background.start(partial(relay.run, deps, listen=False))
            callbacks = callback_handler(deps, jobs, answers)
            apart = None
            if s.callbacks_bind is not None:
                apart = await background.start(serve_callbacks, callbacks, s.callbacks_bind)
            app = create_app(deps, jobs, answers, callbacks)
            await _serve(deps, app, config, apart, task_status=task_status)
            # Served and drained: publish what is queued, then stop.
            background.cancel_scope.cancel()
        marking.cancel_scope.cancel()


async def _serve(
    deps: ApiDeps,
    app: QuartTrio,
    config: Config,
    callbacks: str | None,
    *,
    task_status: trio.TaskStatus[Served],
) -> None:
    """Hypercorn until ``deps.stop``, in-flight requests drained."""
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app,
                config,
                shutdown_trigger=deps.stop.wait,
                task_status=task_status,
            )
        )
        log.info("api listening on %s", binds[0])
        task_status.started(Served(binds[0], callbacks))
