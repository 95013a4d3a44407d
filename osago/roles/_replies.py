"""The api's error bodies that more than one of its routes answers with (the Quart app's
handlers and the plain ASGI routes: callbacks, a new calculation)."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_BODY", "store_down", "too_large", "unauthorized"]

MAX_BODY = 64 * 1024  # a quote request is a few hundred bytes, a callback less


def store_down() -> dict[str, Any]:
    """503: the store failed or timed out; the caller may retry later."""
    return {"error": "unavailable", "message": "storage is unavailable, retry later"}


def too_large() -> dict[str, Any]:
    """413: a body over :data:`MAX_BODY`."""
    return {"error": "too_large", "message": f"the body must be at most {MAX_BODY >> 10} KiB"}


def unauthorized() -> dict[str, Any]:
    """401: the core application's Bearer token (OSAGO_API_TOKEN) is missing or wrong."""
    return {"error": "unauthorized", "message": "a valid Bearer token is required"}
