"""The cyclic garbage collector's pauses, per generation, as a Prometheus histogram.

Why: while CPython's collector runs, the event loop stands still; in a busy worker a young
collection walks every object its exchanges in flight allocated since the last one (their
tasks, coroutines, cancel scopes), and an older one walks all of them. Those pauses are a
part of every role's latency tail that no other metric shows.

A pause is wall time: on a loaded host it includes the time the process waited for a core
mid-collection. ``osago_gc_cpu_seconds_total`` counts the collector's own CPU (the thread's
CPU clock), the figure to weigh a collector policy's cost by.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["GcPauses"]

_PAUSE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses(Collector):
    """``osago_gc_pause_seconds{generation}``: each collection, from ``gc.callbacks``; and
    ``osago_gc_cpu_seconds_total{generation}``: the CPU they took.

    Counted in plain lists, not through prometheus_client's values: the callback runs inside
    whatever allocation started the collection, and those take a (non-reentrant) lock."""

    def __init__(self, buckets: tuple[float, ...] = _PAUSE) -> None:
        self._bounds = buckets
        self._counts = [[0] * (len(buckets) + 1) for _ in range(3)]
        self._sums = [0.0, 0.0, 0.0]
        self._cpu = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._started_cpu = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._cpu[generation] += time.thread_time() - self._started_cpu
        self._counts[generation][bisect_left(self._bounds, pause)] += 1
        self._sums[generation] += pause

    @contextmanager
    def installed(self) -> Iterator[GcPauses]:
        """Count every collection while the block runs."""
        gc.callbacks.append(self._callback)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._callback)

    def collect(self) -> Iterator[Metric]:
        counts = [list(c) for c in self._counts]  # a snapshot: a collection may come meanwhile
        sums = list(self._sums)
        cpu = list(self._cpu)
        family = HistogramMetricFamily(
            "osago_gc_pause_seconds",
            "Pauses of CPython's cyclic garbage collector (the event loop stands still).",
            labels=["generation"],
        )
        for generation in range(3):
            cumulative = list(accumulate(counts[generation]))
            buckets = [(repr(b), n) for b, n in zip(self._bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([str(generation)], buckets, sums[generation])
        yield family
        spent = CounterMetricFamily(
            "osago_gc_cpu_seconds",
            "CPU taken by CPython's cyclic garbage collector.",
            labels=["generation"],
        )
        for generation in range(3):
            spent.add_metric([str(generation)], cpu[generation])
        yield spent
