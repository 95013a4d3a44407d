"""How long each role's garbage collector stood its loop still over a step.

Every role serves ``osago_gc_pause_seconds{generation}`` (osago/metrics/_gc.py) on its
metrics port; this reads it before and after a step. A direct figure: unlike CPU per
calculation, which moves with this shared host's speed from one run to the next, the
collector's share of a process's CPU is read in one run.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.capacity_cpu import group_of
from tests.cluster import Cluster

__all__ = ["LONG", "GcReading", "gc_delta", "gc_reading"]

# group -> generation -> (seconds paused, collections, collections of LONG or more, CPU
# seconds: a pause is wall time, and on this loaded host part of it is waiting for a core)
GcReading = dict[str, dict[str, tuple[float, int, int, float]]]
LONG = 0.025  # a pause this long shows in an offer's overhead p99 (a bucket's bound)


async def gc_reading(http: httpx.AsyncClient, cluster: Cluster) -> GcReading:
    """Each process group's pauses so far, summed over its processes, by generation."""
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    short: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # under LONG
    cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, proc in cluster.procs.items():
        url = proc.urls.get("metrics")
        if url is None:
            continue
        group = group_of(name)
        text = (await http.get(url)).text
        for family in text_string_to_metric_families(text):
            if family.name == "osago_gc_cpu_seconds":
                for s in family.samples:
                    cpu[group][s.labels["generation"]] += s.value
                continue
            if family.name != "osago_gc_pause_seconds":
                continue
            for s in family.samples:
                generation = s.labels["generation"]
                if s.name.endswith("_sum"):
                    seconds[group][generation] += s.value
                elif s.name.endswith("_count"):
                    counts[group][generation] += int(s.value)
                elif s.name.endswith("_bucket") and float(s.labels["le"]) == LONG:
                    short[group][generation] += int(s.value)
    return {
        g: {
            gen: (seconds[g][gen], counts[g][gen], counts[g][gen] - short[g][gen], cpu[g][gen])
            for gen in seconds[g]
        }
        for g in seconds
    }


def gc_delta(before: GcReading, after: GcReading) -> GcReading:
    """The pauses between two readings."""
    out: GcReading = {}
    for group, gens in after.items():
        out[group] = {}
        for gen, (sec, n, long, cpu) in gens.items():
            sec0, n0, long0, cpu0 = before.get(group, {}).get(gen, (0.0, 0, 0, 0.0))
            out[group][gen] = (sec - sec0, n - n0, long - long0, cpu - cpu0)
    return out
