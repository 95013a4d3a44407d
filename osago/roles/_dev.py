"""Development endpoints: the demo page and what stands in for the core application.

Enabled by ``OSAGO_DEV_ENDPOINTS=1``, and by default in ``osago --role all`` alone (which
``OSAGO_DEV_ENDPOINTS=0`` turns off, as the Containerfile does). Never expose them
in production: ``/dev/token`` mints a WebSocket token for any user id.
"""

from __future__ import annotations

from typing import Any

from quart import request
from quart_trio import QuartTrio

from osago.domain import tables, territories
from osago.domain.dates import moscow_today
from osago.domain.request import sample_request
from osago.models import iso
from osago.roles._deps import ApiDeps
from osago.tokens import mint_token
from osago.web.pages import add_page

__all__ = ["add_dev_routes"]

TOKEN_TTL = 600.0


def add_dev_routes(app: QuartTrio, deps: ApiDeps) -> None:
    """The demo page at ``/``, ``GET /dev/config`` and ``POST /dev/token``."""
    add_page(app, "/", "index.html")

    @app.get("/dev/config")
    async def config() -> Any:
        today = moscow_today(deps.clock.now())
        return {
            "ws_url": deps.ws_url,
            "deadline_seconds": deps.settings.deadline_seconds,
            "late_window_seconds": deps.settings.late_window_seconds,
            "territories": [{"name": n, "kladr": k} for n, k in territories.listing()],
            "kbm_classes": list(tables.KBM),
            "sample": sample_request(today),
        }

    @app.post("/dev/token")
    async def token() -> Any:
        body = await request.get_json(silent=True) or {}
        user_id = str(body.get("user_id") or "").strip()
        if not user_id:
            return {
                "error": "validation_failed",
                "errors": [{"field": "user_id", "message": "is required"}],
            }, 422
        expires_at = deps.clock.now() + TOKEN_TTL
        return {
            "token": mint_token(deps.settings.ws_secret, user_id, expires_at=expires_at),
            "expires_at": iso(expires_at),
        }
