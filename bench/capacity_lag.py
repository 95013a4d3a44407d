"""How late each role's loop woke its timers over a step: ``osago_loop_lag_seconds``
(osago/metrics/_lag.py) from every role's metrics port, read before and after the step.

Why: a role short of CPU shows it there first. A worker's loop that wakes late reads its
jobs late, and they wait in the broker; that counts in "commit -> picked up" and in the api's
shedding, but only this says which process was short.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.capacity_cpu import group_of
from osago.metrics import bucket_quantile
from tests.cluster import Cluster

__all__ = ["LagReading", "lag_delta", "lag_line", "lag_quantiles", "lag_reading"]

LagReading = dict[str, dict[float, float]]  # group -> bucket bound (s) -> cumulative count


async def lag_reading(http: httpx.AsyncClient, cluster: Cluster) -> LagReading:
    """Each process group's lag histogram so far, summed over its processes."""
    out: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for name, proc in cluster.procs.items():
        url = proc.urls.get("metrics")
        if url is None:
            continue
        for family in text_string_to_metric_families((await http.get(url)).text):
            if family.name != "osago_loop_lag_seconds":
                continue
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out[group_of(name)][float(s.labels["le"])] += s.value
    return {g: dict(b) for g, b in out.items()}


def lag_delta(before: LagReading, after: LagReading) -> LagReading:
    """The wake-ups between two readings."""
    return {
        g: {le: n - before.get(g, {}).get(le, 0.0) for le, n in buckets.items()}
        for g, buckets in after.items()
    }


def lag_quantiles(buckets: dict[float, float], qs: tuple[float, ...]) -> list[float] | None:
    """For each quantile, the bound of the first bucket that holds it (inf: past the last
    bound); None when there was no wake-up."""
    pairs = sorted(buckets.items())
    found = [le for q in qs if (le := bucket_quantile(pairs, q)) is not None]
    return found if len(found) == len(qs) else None


def _bound(s: float) -> str:
    return "over 2.5 s" if math.isinf(s) else f"<= {1000 * s:g}"


def lag_line(r: dict[str, Any]) -> str:
    """The detail line: each group's loop lag p50/p99, as the histogram's bucket bounds."""
    parts = [
        f"{group} {_bound(p50)}/{_bound(p99)}"
        for group, (p50, p99) in sorted(r.get("lag", {}).items())
    ]
    if not parts:
        return ""
    return "\n      loop lag p50/p99 (ms, bucket bounds): " + ", ".join(parts)
