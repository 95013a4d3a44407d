"""CPU seconds of each process group of a capacity run, from /proc: the cluster's roles
(workers summed), ActiveMQ's JVM and every PostgreSQL backend."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import Cluster

__all__ = ["Groups", "cpu_delta", "cpu_seconds", "group_of", "reference_ms"]

TICKS = os.sysconf("SC_CLK_TCK")


def _reference_once() -> float:
    started = time.process_time()
    d = {str(i): i * 2 for i in range(200_000)}
    sum(len(k) for k in d)
    json.loads(json.dumps(list(d.items())[:50_000]))
    return 1000 * (time.process_time() - started)


def reference_ms() -> float:
    """CPU ms a fixed pure-Python workload (dicts, strings, JSON) takes here now: the median
    of three. Why: this shared host measured the same code 58.7 and 69.1 ms of CPU per
    calculation ten minutes apart (calm 30/s, 2026-12-06), and this workload itself took
    140 to 260 ms on the idle box within a minute; CPU figures from different runs compare
    only beside it."""
    return statistics.median(_reference_once() for _ in range(3))


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_of(pattern: str, *, user: str | None = None) -> list[int]:
    args = ["pgrep", *(("-u", user) if user else ()), "-f", pattern]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def group_of(name: str) -> str:
    """The measured group of a cluster process: ``workers``, ``simulator``, or its role."""
    key = "workers" if name.startswith("worker") else name.rstrip("0123456789")
    return "simulator" if key == "insurers" else key


@dataclass
class Groups:
    """Which pids make up each measured process group."""

    cluster: Cluster

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for name, proc in self.cluster.procs.items():
            groups[group_of(name)].append(proc.process.pid)
        groups["activemq"] = pids_of("activemq.jar")
        groups["postgres"] = pids_of("postgres", user="postgres")
        return groups

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {g: {p: cpu_seconds(p) for p in ps} for g, ps in self.pids().items()}


def cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds per group between two snapshots (new pids count from zero)."""
    return {
        g: sum(t - before.get(g, {}).get(p, 0.0) for p, t in pids.items())
        for g, pids in after.items()
    }
