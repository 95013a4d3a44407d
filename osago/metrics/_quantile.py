"""A quantile read off a Prometheus histogram's cumulative buckets, as a bucket bound."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bucket_quantile"]


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the first bucket holding quantile ``q``, from cumulative
    ``(le, count)`` pairs sorted by ``le`` (``inf``: past the last finite bound); None when
    nothing was observed."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    return next(le for le, count in buckets if count >= target)
