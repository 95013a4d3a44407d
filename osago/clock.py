"""Wall time for stored timestamps, mapped onto Trio's clock for sleeping.

Deadlines are stored as wall-clock (Unix) seconds because several processes share them;
every wait is a Trio scope, so :class:`MockClock` drives tests. ``TrioWallClock`` makes wall
time a function of Trio time, so a test on ``MockClock(autojump_threshold=0)`` sees stored
deadlines pass in virtual time.
"""

from __future__ import annotations

import time
from typing import Protocol

import trio

__all__ = ["Clock", "SystemClock", "TrioWallClock"]


class Clock(Protocol):
    """Source of wall time (Unix seconds) and its mapping to Trio time."""

    def now(self) -> float:
        """Current wall time, Unix seconds."""
        ...

    def trio_time(self, wall: float) -> float:
        """The Trio clock reading at which wall time ``wall`` is reached."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    def trio_time(self, wall: float) -> float:
        return trio.current_time() + (wall - time.time())


class TrioWallClock:
    """Wall time = ``epoch`` + Trio time: fully driven by Trio's (possibly mock) clock."""

    def __init__(self, epoch: float = 1_790_000_000.0) -> None:
        self._offset = epoch

    def now(self) -> float:
        return self._offset + trio.current_time()

    def trio_time(self, wall: float) -> float:
        return wall - self._offset
