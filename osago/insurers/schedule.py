"""When to poll an insurer next: few polls, little added wait, never above its rate limit.

Each insurer's contract bounds how often one calculation may be polled (``min_poll_interval``,
once a second in real aggregator contracts); a pending answer may carry a hint (Retry-After or
``poll_after``) that we honour. Between those bounds we learn, per insurer, when its answers
become ready (seconds from our submit; the last ``window`` answers) and poll where they
usually arrive.

The objective: every poll costs one request; every second between the answer becoming ready
and our next poll is wait the user sees. We poll when the chance that the answer became ready
since the last poll reaches ``target`` (given it was not ready then), i.e. each poll is worth
about the same probability mass:

    next = min { t' >= t + min_interval :  (F(t') - F(t)) / (1 - F(t)) >= target }

capped at ``t + max_interval`` (the wait an unusual answer can suffer) where answers do
arrive, where F is the empirical distribution of the insurer's answer times and t the time of
the last poll. Where answers are dense the intervals shrink to the rate limit; the stretch
before the earliest answer ever seen is skipped; after it, and past the latest one, no gap
exceeds ``max_interval``. A poll is placed just after a learned answer time
(``margin``), since an answer is visible only once it is ready. Until ``warmup`` answers
are known, we poll at the rate limit. ``bench/capacity.py`` prints the resulting polls per
exchange and wait.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

__all__ = ["AnswerTimes", "SchedulePolicy"]


@dataclass(frozen=True)
class SchedulePolicy:
    """Bounds and aims of one insurer's poll schedule (seconds; ``target`` a probability)."""

    min_interval: float = 1.0  # the contract's rate limit per calculation
    max_interval: float = 1.4  # the longest gap while the user waits
    target: float = 0.25  # the chance of an answer each poll should carry
    margin: float = 0.05  # poll this long after a learned answer time (plus 2 %)
    window: int = 512  # answers remembered per insurer
    warmup: int = 8  # answers needed before the schedule is trusted


class AnswerTimes:
    """One insurer's recent answer times and the schedule they imply (one per process)."""

    def __init__(self, policy: SchedulePolicy = SchedulePolicy()) -> None:
        self.policy = policy
        self._recent: deque[float] = deque(maxlen=policy.window)
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._recent)

    def record(self, seconds: float) -> None:
        """An answer became ready ``seconds`` after the submit."""
        if not seconds >= 0.0:  # also refuses NaN
            return
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def _cdf(self, t: float) -> int:
        """How many remembered answers were ready by ``t``."""
        return bisect.bisect_right(self._sorted, t)

    def next_poll(self, last: float | None, *, hint: float | None = None) -> float:
        """When to poll next (seconds since the submit), the last poll having been at ``last``
        (None: no poll yet; the submit is not a poll, so the rate limit does not apply).

        ``hint``: the insurer asked us not to poll before ``last + hint``.
        """
        p = self.policy
        since = 0.0 if last is None else last
        earliest = since + max(0.0 if last is None else p.min_interval, hint or 0.0)
        latest = max(earliest, since + p.max_interval)
        n = len(self._sorted)
        if n < p.warmup:
            return max(earliest, since + p.min_interval)
        done = self._cdf(since)
        left = n - done
        if left == 0:  # later than any answer we know: the tail
            return latest
        # The answer time that brings the conditional probability to the target.
        need = max(1, int(-(-p.target * left // 1)))  # ceil(target * left), at least one
        at = self._after(self._sorted[done + need - 1])
        # max_interval bounds every gap once the earliest answer time has passed. Only the
        # stretch before it (the insurer's least processing time) is skipped in one step:
        # later, a gap between learned times is sampling noise in a sparse tail (a window
        # holds ~5 answers past its 99th percentile, seconds apart), and skipping it made
        # the answers that land there wait longest (bench/capacity.py, realistic profile).
        cap = max(latest, self._after(self._sorted[0])) if done == 0 else latest
        return min(max(earliest, at), cap)

    def _after(self, t: float) -> float:
        """A poll just after answer time ``t``: it must be ready when the poll arrives."""
        return t + self.policy.margin + 0.02 * t
