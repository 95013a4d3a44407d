"""The api's OpenAPI 3.1 document; the request schema comes from the validating model."""

from __future__ import annotations

from datetime import date
from typing import Any

from osago import __version__
from osago.domain.request import QUOTE_REQUEST, sample_request

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_VALIDATION = {
    "type": "object",
    "properties": {
        "error": {"const": "validation_failed"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "description": "dotted path"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_ACCEPTED = {
    "type": "object",
    "properties": {
        "calculation_id": {"type": "string", "format": "uuid"},
        "status": {"enum": ["pending", "completed", "closed"]},
        "created_at": {"type": "string", "format": "date-time"},
        "deadline_at": {"type": "string", "format": "date-time"},
        "insurers": {"type": "array", "items": {"type": "string"}},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(today: date) -> dict[str, Any]:
    """The document served at ``/api/v1/openapi.json``; its example starts after ``today``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "osago-aggregator", "version": __version__},
        "components": {
            "schemas": {"QuoteRequest": QUOTE_REQUEST.json_schema()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "OSAGO_API_TOKEN (the core application); required for "
                    "POST only when the server has one configured",
                },
                "user": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the user's own WebSocket token: reads their "
                    "calculations only (also accepted as ?token=)",
                },
            },
        },
        "paths": {
            "/api/v1/calculations": {
                "post": {
                    "summary": "Start a quote: fan out to every insurer",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/QuoteRequest"},
                                "example": sample_request(today),
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_ACCEPTED, "Accepted; offers follow over WebSocket"),
                        "400": _json(_ERROR, "The body is not JSON"),
                        "401": _json(_ERROR, "Missing or wrong bearer token"),
                        "409": _json(_ERROR, "request_id reused with another body"),
                        "422": _json(_VALIDATION, "Rules broken, per field"),
                        "503": _json(
                            _ERROR,
                            "Storage unavailable, or overloaded: too many jobs wait for a worker"
                            " or to be published (Retry-After); retry",
                        ),
                    },
                }
            },
            "/api/v1/calculations/{calculation_id}": {
                "get": {
                    "summary": "A calculation with its offers so far",
                    "security": [{"bearer": []}, {"user": []}],
                    "parameters": [
                        {
                            "name": "calculation_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The calculation"},
                        "401": _json(_ERROR, "Neither the core app's token nor a user's"),
                        "404": _json(_ERROR, "No such calculation (or another user's)"),
                    },
                }
            },
        },
    }
