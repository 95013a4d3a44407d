"""The operations page: ``GET /ops`` and its data, ``GET /ops/state`` (this process's
metrics: in ``--role all`` every role's). On with the demo, or ``OSAGO_OPS_PAGE=1``."""

from __future__ import annotations

from importlib import resources
from typing import Any

from quart import Response
from quart_trio import QuartTrio

from osago.metrics import snapshot
from osago.roles._deps import ApiDeps

__all__ = ["add_ops_routes"]


def add_ops_routes(app: QuartTrio, deps: ApiDeps) -> None:
    """Queue depth and job wait, each insurer's breaker and work in flight, recent stubs."""
    page = resources.files("osago.web").joinpath("ops.html").read_text()

    @app.get("/ops")
    async def ops() -> Any:
        return Response(page, content_type="text/html; charset=utf-8")

    @app.get("/ops/state")
    async def state() -> Any:
        return snapshot(deps.metrics)
