"""CPU seconds of each process group of a capacity run, from /proc: the cluster's roles
(workers summed), ActiveMQ's JVM and every PostgreSQL backend."""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import Cluster

__all__ = ["Groups", "cpu_delta", "cpu_seconds"]

TICKS = os.sysconf("SC_CLK_TCK")


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


@dataclass
class Groups:
    """Which pids make up each measured process group."""

    cluster: Cluster

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for name, proc in self.cluster.procs.items():
            key = "workers" if name.startswith("worker") else name.rstrip("0123456789")
            key = "simulator" if key == "insurers" else key
            groups[key].append(proc.process.pid)
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
