"""The HTML pages the api serves (the demo, the operations page), from this package."""

from __future__ import annotations

from importlib import resources
from typing import Any

from quart import Response
from quart_trio import QuartTrio

__all__ = ["add_page"]


def add_page(app: QuartTrio, path: str, filename: str) -> None:
    """Serve ``osago/web/<filename>`` at ``path`` (read once)."""
    html = resources.files("osago.web").joinpath(filename).read_text()

    async def page() -> Any:
        return Response(html, content_type="text/html; charset=utf-8")

    app.add_url_rule(path, f"page_{filename}", page, methods=["GET"])
