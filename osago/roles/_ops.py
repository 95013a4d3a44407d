"""The operations page: ``GET /ops`` and its data, ``GET /ops/state`` (this process's
metrics: in ``--role all`` every role's). On with the demo, or ``OSAGO_OPS_PAGE=1``."""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from osago.metrics import snapshot
from osago.roles._deps import ApiDeps
from osago.web.pages import add_page

__all__ = ["add_ops_routes"]


def add_ops_routes(app: QuartTrio, deps: ApiDeps) -> None:
    """Queue depth and job wait, each insurer's breaker and work in flight, recent stubs."""
    add_page(app, "/ops", "ops.html")

    @app.get("/ops/state")
    async def state() -> Any:
        return snapshot(deps.metrics)
