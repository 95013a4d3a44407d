"""Log lines are written in batches: below WARNING after a linger, in one write, in order;
a WARNING at once with what came before it; what is left at exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from osago._log_writer import BatchingStreamHandler


class Stream:
    """Records each write; ``written`` is set by the first."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.written = threading.Event()

    def write(self, text: str) -> int:
        self.writes.append(text)
        self.written.set()
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("osago.test.log_writer")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


def attach(log: logging.Logger, linger: float, limit: int = 64 * 1024) -> Stream:
    stream = Stream()
    handler = BatchingStreamHandler(stream, linger=linger, limit=limit)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    return stream


def test_lines_below_warning_wait_for_the_linger_and_go_in_one_write(
    logger: logging.Logger,
) -> None:
    stream = attach(logger, linger=0.05)
    for i in range(3):
        logger.info("line %d", i)
    assert stream.writes == []  # still gathering: nothing written on the caller's thread
    assert stream.written.wait(10.0)  # the writer thread's, after the linger
    assert stream.writes == ["INFO line 0\nINFO line 1\nINFO line 2\n"]


def test_a_warning_is_written_at_once_after_the_lines_before_it(logger: logging.Logger) -> None:
    stream = attach(logger, linger=3600.0)
    logger.info("first")
    logger.debug("second")
    assert stream.writes == []
    logger.warning("went wrong")
    assert stream.writes == ["INFO first\nDEBUG second\nWARNING went wrong\n"]
    logger.error("again")
    assert stream.writes[1:] == ["ERROR again\n"]


def test_a_full_buffer_is_written_at_once(logger: logging.Logger) -> None:
    stream = attach(logger, linger=3600.0, limit=30)
    logger.info("a" * 10)
    assert stream.writes == []
    logger.info("b" * 20)  # 12 + 22 characters: past the limit
    assert stream.writes == ["INFO " + "a" * 10 + "\nINFO " + "b" * 20 + "\n"]


def test_no_linger_writes_each_line_at_once(logger: logging.Logger) -> None:
    stream = attach(logger, linger=0.0)
    logger.info("one")
    logger.info("two")
    assert stream.writes == ["INFO one\n", "INFO two\n"]


def test_flush_writes_what_gathered(logger: logging.Logger) -> None:
    stream = attach(logger, linger=3600.0)
    logger.info("pending")
    logger.handlers[0].flush()
    assert stream.writes == ["INFO pending\n"]


def test_a_process_writes_its_gathered_lines_when_it_exits() -> None:
    code = (
        "import logging\n"
        "from osago import logs\n"
        "logs.configure('INFO', 'text', linger=3600.0)\n"
        "logging.getLogger('osago.test').info('the last line')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "INFO osago.test: the last line" in done.stderr
