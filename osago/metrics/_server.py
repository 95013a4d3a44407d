"""``GET /metrics``, ``/healthz`` and ``/readyz`` on OSAGO_METRICS_BIND: a small h11 server
on Trio, so that every role (the simulator too) serves them the same way."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from osago.metrics._families import Metrics

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


async def _answer(
    metrics: Metrics, checks: Mapping[str, Check], target: str
) -> tuple[int, str, bytes]:
    path = target.split("?", 1)[0]
    if path == "/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
    if path == "/healthz":
        return 200, "application/json", b'{"status": "alive"}'
    if path == "/readyz":
        status, body = await _readiness(checks)
        return status, "application/json", body
    return 404, "application/json", b'{"error": "not_found"}'


async def _handle(metrics: Metrics, checks: Mapping[str, Check], stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        with trio.move_on_after(30):  # a scrape is one short request; nobody idles here
            target = "/"
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Request):
                    target = event.target.decode()
                    continue
                if isinstance(event, h11.Data):
                    continue  # a body nobody asked for
                if not isinstance(event, h11.EndOfMessage):
                    return  # the peer closed, or sent what a scraper does not
                status, kind, body = await _answer(metrics, checks, target)
                headers = [("content-type", kind), ("content-length", str(len(body)))]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # a broken scrape is the scraper's problem
    finally:
        await stream.aclose()


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
    await trio.serve_listeners(partial(_handle, metrics, checks), listeners)
