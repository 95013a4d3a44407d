"""``POST /api/v1/calculations``: a new calculation, served in plain ASGI in front of Quart
(osago/web/asgi_route.py says why).

The core application (``Authorization: Bearer <OSAGO_API_TOKEN>``, when one is set) sends
the quote request; it gets 202 with the receipt and ``Location``, or: 401 without the token,
400 for a body that is not UTF-8 JSON, 422 with per-field errors, 503 with ``Retry-After``
while too many jobs wait (after validation, so bad input still learns what is wrong), 409
for a calculation id reused with another request, 503 while the store is down. The same
request again is answered as the first time, with ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import json
import logging

from osago.batching import Deferred
from osago.domain.dates import moscow_today
from osago.domain.request import validate_request
from osago.errors import ConflictError, StoreError, ValidationFailed
from osago.lifecycle import Timing, accept
from osago.logs import about
from osago.models import OutboxMessage, iso
from osago.roles._deps import ApiDeps
from osago.roles._replies import store_down, unauthorized
from osago.tokens import bearer_matches
from osago.web.asgi_route import PathHandler, Reply

__all__ = ["CALCULATIONS", "METHOD_NOT_ALLOWED", "create_handler"]

log = logging.getLogger("osago.api")

CALCULATIONS = "/api/v1/calculations"
METHOD_NOT_ALLOWED = {"error": "method_not_allowed", "message": f"{CALCULATIONS} takes a POST"}
# Seconds a refused caller is asked to wait: about one refresh of the backlog's reading.
_OVERLOADED_RETRY_AFTER = 5


def create_handler(deps: ApiDeps, jobs: Deferred[OutboxMessage] | None) -> PathHandler:
    """The handler of ``POST /api/v1/calculations`` (given the body and the Authorization
    header). With ``jobs`` each calculation's jobs are leased to this api and handed to
    ``jobs`` to publish at once; without, they wait in the outbox for a relay."""
    s = deps.settings
    timing = Timing(s.deadline_seconds, s.late_window_seconds)

    async def create(raw: bytes, authorization: str | None) -> Reply:
        if s.api_token and not bearer_matches(s.api_token, authorization):
            return unauthorized(), 401, ()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"error": "bad_request", "message": "the body must be UTF-8 JSON"}, 400, ()
        now = deps.clock.now()
        try:
            valid = validate_request(body, today=moscow_today(now))
        except ValidationFailed as exc:
            errors = [{"field": e.field, "message": e.message} for e in exc.errors]
            return {"error": "validation_failed", "errors": errors}, 422, ()
        if (why := deps.backlog.refusal()) is not None:
            deps.metrics.overloaded.labels(why.cause).inc()
            log.warning("api: new calculation refused: %s", why.detail)
            return (
                {
                    "error": "overloaded",
                    "message": "too many calculations are waiting to start, retry later",
                },
                503,
                [("Retry-After", str(_OVERLOADED_RETRY_AFTER))],
            )
        calc = accept(valid, deps.insurers, now=now, timing=timing)
        about(calc.id)
        location = ("Location", f"{CALCULATIONS}/{calc.id}")
        try:
            created = await deps.store.create_calculation(
                calc, queue=s.requests_queue, lease=s.job_lease if jobs is not None else 0.0
            )
            if created is None:  # the same request again: answer as the first time
                view = await deps.store.get_calculation(calc.id)
        except ConflictError as exc:
            return {"error": "conflict", "message": str(exc)}, 409, ()
        except StoreError as exc:
            log.error("api: %s", exc)
            return store_down(), 503, ()
        if created is None:
            assert view is not None
            return view.receipt(), 202, [location, ("Idempotent-Replayed", "true")]
        if jobs is not None:
            jobs.add(created)
        log.info(
            "calculation %s: accepted for user %s, %d insurers, deadline %s",
            calc.id,
            calc.user_id,
            len(calc.exchanges),
            iso(calc.deadline_at),
        )
        deps.metrics.accepted.inc()
        return calc.receipt(), 202, [location]

    return create
