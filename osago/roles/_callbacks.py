"""``POST /api/v1/callbacks/{insurer}``: an insurer in callback mode delivers its answer.

Checked in this order, each refusal a clear 4xx that changes nothing: the insurer is one we
ask in callback mode (404); the body is signed with its secret, recently (401,
osago/insurers/callbacks.py); the signature was not seen before (409 replayed); the body is an
answer by the protocol, a final one (400, 422); its correlation id names one of this insurer's
exchanges (404) that is not settled yet (409). Then it is stored through the same lifecycle
rule as a polled answer (so a callback racing a safety poll, or arriving twice through two api
instances, stores one outcome) and its events are published at once.

Served in one of two places, by the same handler (:func:`callback_handler`):

- on the api's own port, in plain ASGI in front of Quart (:func:`add_callback_routes`);
- with ``OSAGO_CALLBACKS_BIND``, also on a listener of their own, on our lean HTTP/1.1 server
  (:func:`serve_callbacks`). Why: insurers are partners on the internet, the REST api is
  for the core application, so a port of their own is what a deployment exposes; and
  Hypercorn's own work per request was most of a callback's CPU: 1 157-1 300 against
  416-574 us a callback, client included (``bench/api_callbacks.py``, 2026-12-07).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import trio
from quart_trio import QuartTrio

from osago.batching import Deferred
from osago.config import Bind
from osago.errors import CallbackRefused, StoreError
from osago.insurers import Pending, read_answer
from osago.insurers._answers import AnswerError
from osago.insurers.callbacks import SIGNATURE_HEADER, ReplayGuard, insurer_secret, verify
from osago.logs import about
from osago.metrics import observe_completed
from osago.models import JSON, OutboxMessage
from osago.roles._answers import Answer, Answers
from osago.roles._deps import ApiDeps
from osago.roles._exchange import outcome_of
from osago.roles._replies import MAX_BODY, store_down, too_large
from osago.storage import KnownExchange, Settled
from osago.web.asgi_route import Handler, plain_post_route
from osago.web.http1 import Request, Response, json_response, serve_http

__all__ = [
    "CALLBACKS_PREFIX",
    "add_callback_routes",
    "callback_handler",
    "callbacks_http",
    "serve_callbacks",
]

CALLBACKS_PREFIX = "/api/v1/callbacks/"

log = logging.getLogger("osago.api")


def callback_handler(
    deps: ApiDeps,
    events_out: Deferred[OutboxMessage] | None,
    answers: Answers | None = None,
) -> Handler:
    """``(insurer code, body, signature) -> (JSON body, status)``: accept one callback.
    Settled events go to ``events_out`` to be published at once (None: the relay publishes
    them). With ``answers`` (a running api) callbacks that arrive together are read and
    settled in shared transactions, and ``answers`` publishes what it settles (its
    ``publish``); without, each alone. One handler serves both places a callback may come
    in, so that they share one replay guard."""
    s = deps.settings
    # Leased to this api while it publishes them at once; else the relay's at once.
    lease = s.outbox_lease if events_out is not None else 0.0

    async def exchange(correlation_id: UUID) -> KnownExchange | None:
        # Why the store's knowledge first: the api created the calculation, so its store
        # holds its state; a read was a crossing and a statement per callback batch
        # (calm 50/s: the api 0.5-0.9 ms a calculation, callback wait p99 40 -> 30 ms).
        known = deps.store.known_exchange(correlation_id)
        if known is not None:
            return known
        if answers is not None:
            ex = await answers.load(correlation_id)
        else:
            ex = (await deps.store.load_exchanges([correlation_id])).get(correlation_id)
        return None if ex is None else KnownExchange(ex.calculation_id, ex.insurer, ex.settled)

    async def settle(answer: Answer) -> Settled | None:
        if answers is not None:  # it publishes what it settles (Answers.of(publish=...))
            return await answers.settle((answer, ()))
        settled = await deps.store.settle_exchanges(
            [answer], topic=s.results_topic, now=deps.clock.now(), lease=lease
        )
        found = settled.get(answer[0])
        if found is not None and events_out is not None:
            events_out.add(found.events)
        return found

    callers = {c.code: c for c in deps.insurers if c.mode == "callback"}
    secrets = {code: insurer_secret(s.callback_secret, code) for code in callers}
    # Twice the tolerance: a signature is refused as stale before it could leave the guard.
    replays = ReplayGuard(window=2 * s.callback_tolerance)

    async def accept(code: str, body: bytes, signature: str | None) -> None:
        if code not in callers:
            raise CallbackRefused(
                404, "unknown_insurer", "no insurer in callback mode by that code"
            )
        now = deps.clock.now()
        mac = verify(secrets[code], signature, body, now=now, tolerance=s.callback_tolerance)
        if not replays.first_time(mac, now):
            raise CallbackRefused(409, "replayed", "this signed callback was delivered before")
        try:
            answer = read_answer(json.loads(body), {})
        except (ValueError, RecursionError) as exc:  # AnswerError is a ValueError
            kind = "unreadable_answer" if isinstance(exc, AnswerError) else "bad_json"
            raise CallbackRefused(422 if kind != "bad_json" else 400, kind, str(exc)) from exc
        if isinstance(answer, Pending):
            raise CallbackRefused(422, "not_final", "a callback carries a final answer")
        cid = answer.correlation_id
        ex = await exchange(cid)
        if ex is None or ex.insurer != code:
            raise CallbackRefused(404, "unknown_exchange", f"no exchange {cid}")
        about(ex.calculation_id, code)
        if ex.settled:
            raise CallbackRefused(409, "already_settled", _SETTLED)
        outcome = outcome_of(answer, cid, now)
        settled = await settle((cid, outcome))
        if settled is None:  # purged between the read and the settle
            raise CallbackRefused(404, "unknown_exchange", f"no exchange {cid}")
        if not settled.stored:  # settled meanwhile, or what we knew of it lagged
            raise CallbackRefused(409, "already_settled", _SETTLED)
        deps.metrics.outcomes.labels(code, outcome.kind.value).inc()
        observe_completed(deps.metrics, settled.events, now)  # the last answer may complete it
        log.info("calculation %s: %s called back -> %s", ex.calculation_id, code, outcome.kind)

    async def callback(code: str, body: bytes, signature: str | None) -> tuple[JSON, int]:
        try:
            await accept(code, body, signature)
        except CallbackRefused as exc:
            log.warning("callback from %s refused: %s: %s", code[:40], exc.reason, exc)
            label = code if code in callers else "unknown"
            deps.metrics.callbacks.labels(label, exc.reason).inc()
            return {"error": exc.reason, "message": str(exc)}, exc.status
        except StoreError as exc:  # as the app's handler answers it for every other route
            log.error("api: %s", exc)
            return store_down(), 503
        deps.metrics.callbacks.labels(code, "accepted").inc()
        return {"status": "accepted"}, 200

    return callback


def add_callback_routes(app: QuartTrio, handle: Handler) -> None:
    """Callbacks on ``app``'s port, served in plain ASGI before Quart (two of every three
    api requests; osago/web/asgi_route.py)."""
    app.asgi_app = plain_post_route(  # type: ignore[method-assign,assignment]
        app.asgi_app,
        prefix=CALLBACKS_PREFIX,
        header=SIGNATURE_HEADER,
        max_body=MAX_BODY,
        too_large=too_large(),
        handle=handle,
    )


def callbacks_http(handle: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The lean server's handler: ``POST /api/v1/callbacks/{insurer}``, and ``GET /healthz``
    for the load balancer in front of this port; nothing else (404; another method on the
    callbacks' path: 405)."""
    header = SIGNATURE_HEADER.lower()

    async def answer(request: Request) -> Response:
        if request.path == "/healthz" and request.method == "GET":
            return json_response({"status": "ok"})
        code = request.path.removeprefix(CALLBACKS_PREFIX)
        if code == request.path or not code or "/" in code:
            return json_response(_ONLY_CALLBACKS, 404)
        if request.method != "POST":
            return json_response(_POST_ONLY, 405, headers=[("allow", "POST")])
        payload, status = await handle(code, request.body, request.headers.get(header))
        return json_response(payload, status)

    return answer


async def serve_callbacks(
    handle: Handler, bind: Bind, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve callbacks on ``bind`` until cancelled; started() gives the base URL there."""
    listeners = await trio.open_tcp_listeners(bind.port, host=bind.host)
    url = f"http://{bind.host}:{listeners[0].socket.getsockname()[1]}"
    log.info("insurers' callbacks on %s%s{insurer}", url, CALLBACKS_PREFIX)
    task_status.started(url)
    await serve_http(callbacks_http(handle), listeners, max_body=MAX_BODY)


_SETTLED = "this exchange has its answer already"
_ONLY_CALLBACKS = {
    "error": "not_found",
    "message": f"this port serves insurers' callbacks: POST {CALLBACKS_PREFIX}{{insurer}}",
}
_POST_ONLY = {"error": "method_not_allowed", "message": "a callback is a POST"}
