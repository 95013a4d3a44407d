"""A log handler that writes its lines in batches, off the event loop's thread.

Why: each line written at once was a ``write`` system call on the event loop's thread (stderr
is line-buffered), and to a pipe it also wakes the reader (a container runtime's log driver,
journald, a test harness). Profiled under load, writing the api's one line per new
calculation was a sixth of that request's CPU; in a worker, lines were about 4 % of the
process. A line is now appended to a buffer; a writer thread writes what gathered
``linger`` seconds after the first line of a batch came, in one call. A line at WARNING or
above is written at once, with every line before it, in order: what goes wrong shows
without delay, and in context. ``logging.shutdown`` (at exit) writes what is left; a
process killed with SIGKILL loses at most its last ``linger`` seconds of lines below
WARNING.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import TextIO

__all__ = ["BatchingStreamHandler"]


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A :class:`logging.StreamHandler` whose lines below WARNING wait up to ``linger``
    seconds (or until ``limit`` characters gathered) to be written together; ``linger`` 0
    writes every line at once, as the plain handler does."""

    def __init__(self, stream: TextIO | None = None, *, linger: float, limit: int = 64 * 1024):
        super().__init__(stream if stream is not None else sys.stderr)
        self.linger = linger
        self.limit = limit
        self._pending: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called under the handler's lock (Handler.handle), as are the writes below.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if self.linger <= 0 or record.levelno >= logging.WARNING or self._size >= self.limit:
            try:
                self._write_pending()
            except Exception:
                self.handleError(record)
        elif len(self._pending) == 1:  # the first of a batch: the writer wakes for it
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_batches, name="osago-log-writer", daemon=True
                )
                self._writer.start()
            self._wake.set()

    def flush(self) -> None:
        """Write every line gathered so far (``logging.shutdown`` calls this at exit)."""
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._size = 0
            self.stream.write(text)
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()

    def _write_batches(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.linger)  # the lines of the next `linger` seconds join this one
            with self.lock:  # type: ignore[union-attr]
                self._wake.clear()
                # A stream that cannot be written has nowhere to say so: its lines are lost.
                with contextlib.suppress(Exception):
                    self._write_pending()
