"""Log lines say which calculation (and insurer) they are about; JSON on request."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import trio
import trio.lowlevel

from osago.logs import ContextFilter, JsonFormatter, TextFormatter, about


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("osago.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_each_task_logs_its_own_calculation_and_others_none() -> None:
    logger, out = json_logger()

    async def job(calc: str, insurer: str) -> None:
        about(calc, insurer)
        await trio.lowlevel.checkpoint()
        logger.info("polled")

        async def child() -> None:
            logger.warning("child")

        async with trio.open_nursery() as nursery:  # a child task inherits it
            nursery.start_soon(child)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(job, "c1", "aurora")
        nursery.start_soon(job, "c2", "borealis")
    logger.info("about nothing")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    about_c1 = [x for x in lines if x.get("calculation_id") == "c1"]
    assert {x["message"] for x in about_c1} == {"polled", "child"}
    assert {x["insurer"] for x in about_c1} == {"aurora"}
    assert {x.get("insurer") for x in lines if x.get("calculation_id") == "c2"} == {"borealis"}
    last = lines[-1]
    assert last["message"] == "about nothing"
    assert "calculation_id" not in last
    assert {"ts", "level", "logger"} <= set(last)


def test_an_exception_is_one_json_line_with_its_traceback() -> None:
    logger, out = json_logger()
    try:
        raise ValueError("bad\nline")
    except ValueError:
        logger.exception("failed", extra={"calculation_id": "c9"})
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["calculation_id"] == "c9"
    assert "ValueError: bad" in record["error"]


def test_timestamps_made_once_a_second_read_as_logging_and_datetime_make_them() -> None:
    """The formatters keep the text of the current second; each line still shows its own
    time, as logging's ``asctime`` and ``isoformat`` would."""
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    text, as_json = TextFormatter(), JsonFormatter()
    for created in (1_796_617_965.0, 1_796_617_965.25, 1_796_617_965.875, 1_796_617_966.5, 5.125):
        record = logging.LogRecord("osago.t", logging.INFO, __file__, 1, "m %s", ("x",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert text.format(record) == plain.format(record)
        iso = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(as_json.format(record))["ts"] == iso
