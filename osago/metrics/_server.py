"""``GET /metrics``, ``/healthz`` and ``/readyz`` on OSAGO_METRICS_BIND, on our lean HTTP/1.1
server (:mod:`osago.web.http1`), so that every role (the simulator too) serves them the same
way."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from osago.metrics._families import Metrics
from osago.web.http1 import Handler, Request, Response, serve_http

__all__ = ["Check", "serve_metrics"]

log = logging.getLogger("osago.metrics")

# A readiness check: returns None when the dependency works, else what is wrong.
Check = Callable[[], Awaitable[str | None]]

_CHECK_TIMEOUT = 2.0  # a check that hangs counts as down


async def _readiness(checks: Mapping[str, Check]) -> tuple[int, bytes]:
    down: dict[str, str] = {}
    for name, check in checks.items():
        with trio.move_on_after(_CHECK_TIMEOUT) as timer:
            problem = await check()
        if timer.cancelled_caught:
            problem = f"no answer within {_CHECK_TIMEOUT:g}s"
        if problem is not None:
            down[name] = problem
    body = {"status": "down" if down else "ready", "down": down}
    return (503 if down else 200), json.dumps(body).encode()


def _handler(metrics: Metrics, checks: Mapping[str, Check]) -> Handler:
    async def answer(request: Request) -> Response:
        if request.path == "/metrics":
            return Response(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
        if request.path == "/healthz":
            return Response(200, b'{"status": "alive"}')
        if request.path == "/readyz":
            status, body = await _readiness(checks)
            return Response(status, body)
        return Response(404, b'{"error": "not_found"}')

    return answer


async def serve_metrics(
    metrics: Metrics,
    host: str,
    port: int,
    checks: Mapping[str, Check],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; started() gives the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics on http://%s:%d/metrics", host, bound)
    task_status.started(bound)
    # A scrape is one short request: nobody idles here.
    await serve_http(_handler(metrics, checks), listeners, keep_alive=30.0)
